"""How many CPU threads decoding and synthesis use, chosen once by every entry point.

torch's default is every core of the machine. That oversubscribes as soon as anything else
runs (parallel decoding jobs, a second request, the streaming synthesiser's thread): on a
busy 2-core machine 2 threads decoded 6x slower than 1. The default here is
``OMP_NUM_THREADS`` when set (the recipe's ``path.sh`` sets 1 per job), else the CPUs this
process may run on (its affinity mask, which container limits and ``taskset`` shrink).
"""

import argparse
import os
from typing import Callable, Iterable, Iterator, Optional, Tuple, TypeVar, Union

T = TypeVar("T")


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


def use_threads(nthreads: int) -> None:
    """Set torch's intra-op threads of the *calling* thread to ``nthreads``.

    torch keeps the number per OS thread, but a thread takes the last number set anywhere in
    the process at its first parallel op; reading the number first fixes this thread's own
    before it is changed, so a concurrent set elsewhere cannot overwrite it later.
    """
    import torch

    if nthreads < 1:
        raise ValueError(f"nthreads must be >= 1, got {nthreads}")
    torch.get_num_threads()  # this thread's lazy initialisation, before setting
    torch.set_num_threads(nthreads)


def synthesis_threads(total: int, synthesis: Optional[int] = None) -> int:
    """Threads of streaming synthesis beside decoding, out of the caller's ``total``
    (decoding keeps the rest, at least one); 0 means no overlap: decoding pauses while a
    chunk is synthesised with all ``total`` threads.

    ``synthesis`` None: 0. Measured with the small LLM and the real-size token2wav on 2
    threads (``benchmarks/README.md``, first audio), synthesis is ~90 % of a streamed
    reply's work, and overlapping it with decoding (1 + 1 threads) made both the first
    audio and the whole reply later; overlap pays where decoding is a large share (a large
    LLM on CPU) and is chosen with ``synthesis_nthreads``.
    """
    if total < 1:
        raise ValueError(f"total threads must be >= 1, got {total}")
    synthesis = 0 if synthesis is None else synthesis
    if synthesis < 0:
        raise ValueError(f"synthesis threads must be >= 0, got {synthesis}")
    return synthesis


def with_threads(items: Iterable[T], nthreads: Union[int, Callable[[], int]]) -> Iterator[T]:
    """Iterate ``items`` with ``nthreads`` torch threads (a number, or a function asked
    before every item) in the thread that pulls each item: set before and restored after
    every pull, so the consumer's code between items and whichever thread pulls the next
    one keep their own number."""
    import torch

    iterator = iter(items)
    while True:
        before = torch.get_num_threads()
        torch.set_num_threads(nthreads() if callable(nthreads) else nthreads)
        try:
            item = next(iterator)
        except StopIteration:
            return
        finally:
            torch.set_num_threads(before)
        yield item
