"""Keep a long-running server's native heap bounded.

A server answers each request on one of many worker threads (gradio runs handlers in a
thread pool of up to 40). glibc gives threads their own malloc arenas and keeps the pages
that torch frees there, so the resident size of the web demo climbed ~0.5 MB/s under 8
clients while the Python objects stayed constant (gradio's event history, session states
and upload sets are already capped). :class:`HeapTrimmer` hands the free pages back with
``malloc_trim(0)`` after requests, at most every ``interval_s``; on a libc without it
(musl, macOS) it does nothing.
"""

import ctypes
import ctypes.util
import threading
import time
from typing import Optional


def _libc_malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


class HeapTrimmer:
    """``maybe_trim()`` after each request returns freed native memory to the system, at
    most once per ``interval_s`` (a trim takes milliseconds on a GB-sized heap)."""

    def __init__(self, interval_s: float = 2.0):
        self.interval_s = interval_s
        self.trims = 0
        self._trim = _libc_malloc_trim()
        self._last: Optional[float] = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self._trim is not None

    def maybe_trim(self) -> bool:
        """Trim if ``interval_s`` passed since the last trim; True when it trimmed."""
        if self._trim is None:
            return False
        now = time.monotonic()
        with self._lock:
            if self._last is not None and now - self._last < self.interval_s:
                return False
            self._last = now
        self._trim(0)
        self.trims += 1
        return True
