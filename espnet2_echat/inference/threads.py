"""How many CPU threads decoding and synthesis use, chosen once by every entry point.

torch's default is every core of the machine. That oversubscribes as soon as anything else
runs (parallel decoding jobs, a second request, the streaming synthesiser's thread): on a
busy 2-core machine 2 threads decoded 6x slower than 1. The default here is
``OMP_NUM_THREADS`` when set (the recipe's ``path.sh`` sets 1 per job), else the CPUs this
process may run on (its affinity mask, which container limits and ``taskset`` shrink).
"""

import argparse
import os
from typing import Optional


def default_nthreads() -> int:
    """``OMP_NUM_THREADS`` if set, else the number of CPUs in this process's affinity mask."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"OMP_NUM_THREADS must be an integer, got {env!r}") from None
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def set_nthreads(nthreads: Optional[int] = None) -> int:
    """Set torch's intra-op threads (``None``: :func:`default_nthreads`); returns the number.

    torch keeps the number process-wide: Python threads started later (the streaming
    synthesiser's) use it too.
    """
    n = default_nthreads() if nthreads is None else nthreads
    if n < 1:
        raise ValueError(f"nthreads must be >= 1, got {n}")
    import torch  # here, so that the CLIs' --help does not import torch

    torch.set_num_threads(n)
    return n


def add_nthreads_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--nthreads`` option every decoding / synthesis / serving CLI shares."""
    parser.add_argument(
        "--nthreads",
        type=int,
        default=None,
        help="CPU threads for torch (default: OMP_NUM_THREADS if set, else the CPUs this "
        "process may use)",
    )
