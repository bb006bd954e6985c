"""Decode step time with bfloat16 weights vs float32, side by side (issue #17, item 6).

The same random-weight model of ``benchmarks/sizes.py`` twice in memory, one copy in
float32 and one in bfloat16 (both in the CPU decode layout), greedy text decode of
``--tokens`` ids from the same prefill (``--batch`` rows); the two are timed alternately
``--repeats`` times and the ratio bf16 / fp32 of each pair is reported (median, min, max),
as is each step against the read floor taken right before it (``p.sum()`` over the float32
parameters a text step reads, and over their bfloat16 copies).

    python -m benchmarks.bf16_speed --size small --tokens 30 --repeats 7 --threads 2 [--batch 8]
"""

import argparse
import copy
import json
import statistics
import time

import torch

from benchmarks.decode_speed import read_floor
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
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build(args.size)
    builder = LayoutBuilder("conf/tokenizer/qwen2.5", model.llm.ids)
    prompt = torch.tensor(builder.prompt("speech2text_token"))
    wav = torch.randn(1, int(2.26 * 16000)) * 0.1
    with torch.no_grad():
        audio = model.audio_per_sample([prompt], wav, torch.tensor([wav.shape[1]]))
        batch = model.build_inputs([prompt] * args.batch, audio * args.batch, padding_side="left")
    llms = {"float32": model.llm, "bfloat16": copy.deepcopy(model.llm).to(torch.bfloat16)}
    for llm in llms.values():
        llm.use_column_major_weights()
    n = args.tokens
    opts = DecodingOptions(do_sample=False, max_new_tokens=n, max_new_speech_tokens=0, min_new_tokens=n)
    plan = build_plan("text", opts, model.llm.ids)
    step_params = {  # what a text step reads: the LLM body and the text head
        k: [p for name, p in llm.causal_lm.model.named_parameters() if "embed" not in name]
        + [llm.causal_lm.lm_head.weight]
        for k, llm in llms.items()
    }
    times = {k: [] for k in llms}
    over_floor = {k: [] for k in llms}  # step / the fp32 read floor taken before it
    over_own = {k: [] for k in llms}  # step / the read floor of its own dtype
    for r in range(args.repeats + 1):
        for dtype, llm in llms.items():
            embeds = batch.inputs_embeds.to(llm.causal_lm.dtype)
            floor = read_floor(step_params["float32"])
            own = floor if dtype == "float32" else read_floor(step_params[dtype])
            t0 = time.perf_counter()
            generate(llm, embeds, batch.attention_mask, batch.position_ids, plan)
            if r:  # the first round warms up
                step = (time.perf_counter() - t0) / n
                times[dtype].append(step * 1e3)
                over_floor[dtype].append(step / floor)
                over_own[dtype].append(step / own)
    ratios = [b / a for a, b in zip(times["float32"], times["bfloat16"])]
    spread = lambda v: {"median": statistics.median(v), "min": min(v), "max": max(v)}  # noqa: E731
    res = {"command": "python -m benchmarks.bf16_speed " + " ".join(f"--{k} {v}" for k, v in vars(args).items() if k != "out"),
           "ms_per_token": {k: {"min": min(v), "median": statistics.median(v)} for k, v in times.items()},
           "bf16_vs_fp32": spread(ratios),
           "step_over_fp32_read_floor": {k: spread(v) for k, v in over_floor.items()},
           "step_over_own_read_floor": {k: spread(v) for k, v in over_own.items()},
           "times": times}
    print(json.dumps(res, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
