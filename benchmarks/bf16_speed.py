"""Decode step time with bfloat16 weights vs float32, side by side (issue #17, item 6).

The same random-weight model of ``benchmarks/sizes.py`` twice in memory, one copy in
float32 and one in bfloat16 (both in the CPU decode layout), greedy text decode of
``--tokens`` ids from the same prefill; the two are timed alternately ``--repeats`` times
and the ratio bf16 / fp32 of each pair is reported (median, min, max).

    python -m benchmarks.bf16_speed --size small --tokens 30 --repeats 7 --threads 2
"""

import argparse
import copy
import json
import statistics
import time

import torch

from benchmarks.sizes import build
from espnet2_echat.data.layout import LayoutBuilder
from espnet2_echat.inference.decoder import build_plan, generate
from espnet2_echat.inference.settings import DecodingOptions


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small")
    parser.add_argument("--tokens", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build(args.size)
    builder = LayoutBuilder("conf/tokenizer/qwen2.5", model.llm.ids)
    prompt = torch.tensor(builder.prompt("speech2text_token"))
    wav = torch.randn(1, int(2.26 * 16000)) * 0.1
    with torch.no_grad():
        audio = model.audio_per_sample([prompt], wav, torch.tensor([wav.shape[1]]))
        batch = model.build_inputs([prompt], audio, padding_side="left")
    llms = {"float32": model.llm, "bfloat16": copy.deepcopy(model.llm).to(torch.bfloat16)}
    for llm in llms.values():
        llm.use_column_major_weights()
    n = args.tokens
    opts = DecodingOptions(do_sample=False, max_new_tokens=n, max_new_speech_tokens=0, min_new_tokens=n)
    plan = build_plan("text", opts, model.llm.ids)
    times = {k: [] for k in llms}
    for r in range(args.repeats + 1):
        for dtype, llm in llms.items():
            embeds = batch.inputs_embeds.to(llm.causal_lm.dtype)
            t0 = time.perf_counter()
            generate(llm, embeds, batch.attention_mask, batch.position_ids, plan)
            if r:  # the first round warms up
                times[dtype].append((time.perf_counter() - t0) / n * 1e3)
    ratios = [b / a for a, b in zip(times["float32"], times["bfloat16"])]
    res = {"command": "python -m benchmarks.bf16_speed " + " ".join(f"--{k} {v}" for k, v in vars(args).items() if k != "out"),
           "ms_per_token": {k: {"min": min(v), "median": statistics.median(v)} for k, v in times.items()},
           "bf16_vs_fp32": {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)},
           "times": times}
    print(json.dumps(res, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
