"""A linear layer for decode steps on CPU whose output rows are split over threads.

A decode step multiplies a few hidden vectors by every weight of the model. On CPU, BLAS
runs such a matrix-vector product on a single thread (measured in
``benchmarks/decode_speed.py``: the 151936 x 512 text head takes the same time with one
thread as with two), so the largest weight of a step, the text head, is read at one core's
bandwidth. Splitting its output rows over a small pool of threads reads it with every core;
torch releases the GIL inside the product. Neither torch nor transformers offers this for
matrix-vector products, hence this module.

Only worth it for large weights: a hand-off to a pool thread costs ~15 us, so the body's
small projections stay single products.
"""

from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import torch
from torch.nn.functional import linear

_pool: Optional[ThreadPoolExecutor] = None


def _workers(count: int) -> ThreadPoolExecutor:
    global _pool
    if _pool is None or _pool._max_workers < count:
        _pool = ThreadPoolExecutor(count, thread_name_prefix="echat-linear")
    return _pool


def threaded_linear(x: torch.Tensor, weight: torch.Tensor, threads: int) -> torch.Tensor:
    """``F.linear(x, weight)`` (no bias) with ``weight``'s rows split over ``threads``.

    Each thread runs the same product on its rows, so the values equal ``F.linear``'s.
    """
    if threads <= 1:
        return linear(x, weight)
    parts = weight.tensor_split(threads, dim=0)
    pool = _workers(threads - 1)
    futures = [pool.submit(linear, x, part) for part in parts[1:]]
    first = linear(x, parts[0])
    return torch.cat([first] + [f.result() for f in futures], dim=-1)
