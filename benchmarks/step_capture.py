"""Compiled vs eager decode steps vs plain transformers ``generate`` (#17, item 4).

Per size (random weights, fp32, greedy text decode of ``--tokens`` ids from the same prefill
of an S2S prompt with 2.26 s of audio, ``--batch`` rows): each repeat times, back to back,
the read floor (``p.sum()`` over the parameters a step reads), plain transformers
``generate``, the lean decoder eager and the lean decoder with the captured step
(``SpeechLLM.enable_step_capture``; compiled once before the repeats, the compile time is
reported apart). Ratios are paired per repeat and reported as median, min and max, so a
claim such as "3x faster than generate in every run" is the min, not the median.

    python -m benchmarks.step_capture --sizes tiny,small --repeats 7 --out benchmarks/step_capture_cpu.json
"""

import argparse
import copy
import json
import os
import platform
import statistics
import time

import torch

from benchmarks.decode_speed import read_floor
from benchmarks.sizes import build
from espnet2_echat.data.layout import LayoutBuilder
from espnet2_echat.inference.decoder import build_plan, generate
from espnet2_echat.inference.settings import DecodingOptions


def _spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure(size: str, tokens: int, repeats: int, batch: int) -> dict:
    """Per-step times (ms) and paired ratios of one size."""
    model = build(size)
    llm = model.llm
    step_params = [p for n, p in llm.causal_lm.model.named_parameters() if "embed" not in n]
    step_params.append(llm.causal_lm.lm_head.weight)
    prompt = torch.tensor(LayoutBuilder("conf/tokenizer/qwen2.5", llm.ids).prompt("speech2text_token"))
    wav = torch.randn(1, int(2.26 * 16000)) * 0.1
    with torch.no_grad():
        audio = model.audio_per_sample([prompt], wav, torch.tensor([wav.shape[1]]))
        inputs = model.build_inputs([prompt] * batch, audio * batch, padding_side="left")
    options = DecodingOptions(
        do_sample=False, max_new_tokens=tokens, max_new_speech_tokens=0, min_new_tokens=tokens
    )
    plan = build_plan("text", options, llm.ids)
    plain = copy.deepcopy(llm.causal_lm)
    llm.use_column_major_weights()

    def transformers_generate():
        with torch.no_grad():
            plain.generate(
                inputs_embeds=inputs.inputs_embeds, attention_mask=inputs.attention_mask,
                max_new_tokens=tokens, min_new_tokens=tokens, pad_token_id=0,
                eos_token_id=None, do_sample=False,
            )

    def ours(capture: bool):
        def run():
            llm.enable_step_capture(capture)
            return generate(
                llm, inputs.inputs_embeds, inputs.attention_mask, inputs.position_ids, plan
            )
        return run

    runs = {"transformers": transformers_generate, "eager": ours(False), "compiled": ours(True)}
    t0 = time.perf_counter()
    compiled_ids = runs["compiled"]().ids  # the compile
    compile_s = time.perf_counter() - t0
    assert compiled_ids == runs["eager"]().ids, "compiled and eager greedy ids differ"
    runs["transformers"]()
    times = {name: [] for name in ("floor", *runs)}
    for _ in range(repeats):
        times["floor"].append(read_floor(step_params) * 1e3)
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3 / tokens)
    pairs = {
        "transformers_over_compiled": ("transformers", "compiled"),
        "transformers_over_eager": ("transformers", "eager"),
        "eager_over_compiled": ("eager", "compiled"),
        "compiled_over_read_floor": ("compiled", "floor"),
        "eager_over_read_floor": ("eager", "floor"),
    }
    return {
        "size": size, "batch": batch, "tokens": tokens, "repeats": repeats,
        "compile_s": compile_s,
        "ms_per_step": {name: _spread(v) for name, v in times.items()},
        "ms_per_step_all": times,
        "paired_ratios": {
            key: _spread([x / y for x, y in zip(times[a], times[b])])
            for key, (a, b) in pairs.items()
        },
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="tiny,small")
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    res = {
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        "load_before": os.getloadavg(),
        "results": [],
    }
    for size in args.sizes.split(","):
        res["results"].append(measure(size, args.tokens, args.repeats, args.batch))
        res["load_after"] = os.getloadavg()
        print(json.dumps(res["results"][-1]["paired_ratios"]), flush=True)
        if args.out:  # written after each size
            with open(args.out, "w") as f:
                json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
