"""Decode steps with int8 heads vs fp32 heads, side by side (#17, item 6).

Small size (random weights), greedy text and speech decodes of ``--tokens`` ids, one model
with fp32 heads and a copy with int8 heads (``espnet2_echat.models.int8_heads``), timed
alternately per repeat; paired ratios int8 / fp32, median (min-max).

    OMP_NUM_THREADS=1 python -m benchmarks.int8_decode --threads 1 --out benchmarks/int8_decode_cpu.json
"""

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

import torch

from benchmarks.sizes import build
from espnet2_echat.inference.decoder import build_plan, generate
from espnet2_echat.inference.settings import DecodingOptions
from espnet2_echat.models.int8_heads import use_int8_heads


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="small")
    parser.add_argument("--tokens", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fp32 = build(args.size).llm
    fp32.use_column_major_weights()
    int8 = copy.deepcopy(fp32)
    use_int8_heads(int8)
    n, hidden = args.tokens, fp32.causal_lm.config.hidden_size
    embeds = torch.randn(args.batch, 40, hidden) * 0.1
    mask = torch.ones(args.batch, 40, dtype=torch.long)
    positions = torch.arange(40)[None].expand(args.batch, -1)
    plans = {
        "text": build_plan("text", DecodingOptions(do_sample=False, max_new_tokens=n,
                           max_new_speech_tokens=0, min_new_tokens=n), fp32.ids),
        "speech": build_plan("tts", DecodingOptions(do_sample=False, max_new_tokens=0,
                             max_new_speech_tokens=n, min_new_tokens=n), fp32.ids,
                             stopping_criteria=[]),
    }
    res = {"size": args.size, "threads": args.threads, "batch": args.batch,
           "load_before": os.getloadavg()}
    for kind, plan in plans.items():
        times = {"fp32": [], "int8": []}
        for llm in (fp32, int8):
            generate(llm, embeds, mask, positions, plan)  # warm-up
        for _ in range(args.repeats):
            for name, llm in (("fp32", fp32), ("int8", int8)):
                t0 = time.perf_counter()
                generate(llm, embeds, mask, positions, plan)
                times[name].append((time.perf_counter() - t0) * 1e3 / n)
        ratios = [a / b for a, b in zip(times["int8"], times["fp32"])]
        res[kind] = {"ms_per_step_median": {k: statistics.median(v) for k, v in times.items()},
                     "int8_over_fp32": {"median": statistics.median(ratios), "min": min(ratios),
                                        "max": max(ratios)},
                     "ms_per_step_all": times}
        print(kind, json.dumps(res[kind]["int8_over_fp32"]), res[kind]["ms_per_step_median"],
              flush=True)
    res["load_after"] = os.getloadavg()
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
