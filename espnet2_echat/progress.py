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


def progress_bar(total: Optional[int], desc: str, unit: str = "utt") -> tqdm:
    """A tqdm bar over ``total`` items, disabled when stderr is no TTY or INFO is off."""
    quiet = not sys.stderr.isatty() or not logging.getLogger().isEnabledFor(logging.INFO)
    return tqdm(total=total, desc=desc, unit=unit, disable=quiet, dynamic_ncols=True)


def summary_line(
    what: str, done: int, skipped: int, failed: int, started: float, end: Optional[float] = None
) -> str:
    """``<what>: done D, skipped S, failed F in T s`` (``started`` from ``time.perf_counter``)."""
    seconds = (time.perf_counter() if end is None else end) - started
    return f"{what}: done {done}, skipped {skipped}, failed {failed} in {seconds:.1f} s"


class Tally:
    """Counts of a run (done, skipped, failed) that drive its bar and make its summary line.

    A library call takes an optional ``Tally``: it calls :meth:`begin` with the number of
    items it will visit (once per input, e.g. per data dir; counts accumulate) and
    :meth:`add` once per item; the CLI that made the ``Tally`` prints :meth:`summary`.
    """

    OUTCOMES = ("done", "skipped", "failed")

    def __init__(self) -> None:
        self.done = self.skipped = self.failed = 0
        self.started = time.perf_counter()
        self._bar: Optional[tqdm] = None

    def begin(self, total: Optional[int], desc: str, unit: str = "utt") -> None:
        """Start a bar over ``total`` items (``None``: unknown, the bar shows count and rate)."""
        self.end()
        self._bar = progress_bar(total, desc, unit)

    def add(self, outcome: str = "done", n: int = 1) -> None:
        """Count ``n`` items as ``outcome`` (done, skipped or failed) and advance the bar."""
        if outcome not in self.OUTCOMES:
            raise ValueError(f"outcome must be one of {self.OUTCOMES}, got {outcome!r}")
        setattr(self, outcome, getattr(self, outcome) + n)
        if self._bar is not None:
            self._bar.update(n)

    def end(self) -> None:
        """Close the current bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def summary(self, what: str) -> str:
        """Close the bar and return :func:`summary_line` of the counts so far."""
        self.end()
        return summary_line(what, self.done, self.skipped, self.failed, self.started)
