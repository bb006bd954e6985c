"""The greedy choice over the unified score row: torch's ``argmax`` vs ``decoder.greedy_ids``
(block maxima with ``amax``, then one block's argmax), side by side in one run.

    python -m benchmarks.greedy_choice --threads 1,2 --rows 1,8
"""

import argparse
import json
import statistics
import time

import torch

from espnet2_echat.inference.decoder import greedy_ids

WIDTH = 151936 + 4097  # Qwen2.5 text vocabulary + 4097 speech ids


def per_call_us(fn, calls: int = 2000) -> float:
    for _ in range(50):
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rows", default="1,8")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for threads in map(int, args.threads.split(",")):
        torch.set_num_threads(threads)
        for rows in map(int, args.rows.split(",")):
            scores = torch.randn(rows, WIDTH, generator=torch.Generator().manual_seed(rows))
            assert torch.equal(greedy_ids(scores), scores.argmax(dim=-1))
            times = {"argmax": [], "greedy_ids": []}
            for _ in range(args.repeats):  # interleaved
                times["argmax"].append(per_call_us(lambda: scores.argmax(dim=-1)))
                times["greedy_ids"].append(per_call_us(lambda: greedy_ids(scores)))
            print(json.dumps({
                "threads": threads, "rows": rows,
                **{f"{k}_us_median": round(statistics.median(v), 1) for k, v in times.items()},
            }))


if __name__ == "__main__":
    main()
