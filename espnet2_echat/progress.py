"""Progress bars and end-of-run summary lines shared by the long-running CLIs.

A bar (tqdm: count, rate, ETA) is shown only on a terminal and when INFO messages are
logged; under ``--log_level WARNING`` or in a job runner's log file it stays quiet.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Optional

from tqdm import tqdm


def progress_bar(total: int, desc: str, unit: str = "utt") -> tqdm:
    """A tqdm bar over ``total`` items, disabled when stderr is no TTY or INFO is off."""
    quiet = not sys.stderr.isatty() or not logging.getLogger().isEnabledFor(logging.INFO)
    return tqdm(total=total, desc=desc, unit=unit, disable=quiet, dynamic_ncols=True)


def summary_line(
    what: str, done: int, skipped: int, failed: int, started: float, end: Optional[float] = None
) -> str:
    """``<what>: done D, skipped S, failed F in T s`` (``started`` from ``time.perf_counter``)."""
    seconds = (time.perf_counter() if end is None else end) - started
    return f"{what}: done {done}, skipped {skipped}, failed {failed} in {seconds:.1f} s"
