"""Int8 weight-only products vs fp32 at the small size's decode shapes (#17, item 6).

A decode step is a chain of products of a few rows with every weight; int8 weights read a
quarter of the bytes. Before building an int8 decode path this measures, per weight shape of
the small size (Qwen2 hidden 512, intermediate 1536, 8 heads / 2 kv heads, text head
151936 x 512), side by side in one run, interleaved per repeat:

* ``fp32``: the decode layout's product (column-major weight, ``split_linear`` column blocks,
  as ``SpeechLLM.text_logits`` / the lean decoder run it);
* ``int8_weight_only``: ``torch._weight_int8pack_mm`` (int8 weight, per-channel fp32 scales,
  fp32 activations: what torchao's int8 weight-only layout calls on CPU);
* ``int8_dynamic``: ``torch.ao.quantization.quantize_dynamic`` Linear (fbgemm: activations
  quantised per call too, int8 x int8 products);

and the error of each against fp32 (max abs / max abs of the fp32 output).

    python -m benchmarks.int8_products --rows 1,8 --threads 2 --out benchmarks/int8_products_cpu.json
"""

import argparse
import json
import os
import statistics
import time
import warnings

import torch

from espnet2_echat.models.split_linear import split_linear

SHAPES = {  # (out, in) of the small size's weights
    "qkv": (768, 512),
    "o": (512, 512),
    "gate_up": (3072, 512),
    "down": (512, 1536),
    "text_head": (151936, 512),
}


def _time(fn, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", default="1,8")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    res = {"threads": args.threads, "load_before": os.getloadavg(), "shapes": {}}
    for name, (out, inner) in SHAPES.items():
        weight = torch.randn(out, inner) * inner**-0.5
        column_major = weight.t().contiguous().t()
        scales = weight.abs().amax(dim=1) / 127
        q = (weight / scales[:, None]).round().clamp(-127, 127).to(torch.int8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dynamic = torch.ao.quantization.quantize_dynamic(
                torch.nn.Sequential(torch.nn.Linear(inner, out, bias=False)),
                {torch.nn.Linear}, dtype=torch.qint8,
            )
        dynamic[0].set_weight_bias(torch.quantize_per_channel(
            weight, scales.double(), torch.zeros(out, dtype=torch.long), 0, torch.qint8), None)
        calls = max(3, int(2e7 // (out * inner)))
        for rows in map(int, args.rows.split(",")):
            x = torch.randn(rows, inner)
            fns = {
                "fp32": lambda: split_linear(x, column_major, args.threads),
                "int8_weight_only": lambda: torch._weight_int8pack_mm(x, q, scales),
                "int8_dynamic": lambda: dynamic(x),
            }
            exact = x @ weight.t()
            err = {k: float((f() - exact).abs().max() / exact.abs().max()) for k, f in fns.items()}
            times = {k: [] for k in fns}
            with torch.no_grad():
                for f in fns.values():
                    f()
                for _ in range(args.repeats):
                    for k, f in fns.items():
                        times[k].append(_time(f, calls))
            ratios = {
                f"{k}_over_fp32": [a / b for a, b in zip(times[k], times["fp32"])]
                for k in fns if k != "fp32"
            }
            res["shapes"][f"{name}_rows{rows}"] = {
                "us_median": {k: statistics.median(v) for k, v in times.items()},
                "paired_ratio": {
                    k: {"median": statistics.median(v), "min": min(v), "max": max(v)}
                    for k, v in ratios.items()
                },
                "relative_error": err,
            }
            print(name, rows, json.dumps(res["shapes"][f"{name}_rows{rows}"]))
    res["load_after"] = os.getloadavg()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
