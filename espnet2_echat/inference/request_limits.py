"""Limits on requests from the network, shared by the web demo and any HTTP server.

A served model must bound what one request may cost and how many may wait: without it
ten minutes of audio take minutes of CPU and gigabytes of memory, and a burst of clients
queues without end. This module is framework-neutral:

- :class:`RequestLimits`: upload size, audio duration, text length, concurrency, queue.
- :func:`check_upload_size`, :func:`check_audio`, :func:`check_text`: raise a
  :class:`RequestRejected` (with an HTTP status) naming the limit and the value.
- :class:`AdmissionQueue`: at most ``max_concurrent`` requests run, at most ``max_queued``
  wait; one more gets :class:`Busy` (HTTP 503) at once, a waiter gets it after
  ``queue_timeout_s``.
- :class:`Credentials`: optional login (``user:password`` pairs from a file or the
  ``ECHAT_AUTH`` variable), compared in constant time; :meth:`Credentials.check_basic`
  reads an HTTP ``Authorization: Basic`` header.
"""

import base64
import hmac
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np

AUTH_ENV = "ECHAT_AUTH"


class RequestRejected(ValueError):
    """A request refused before decoding; ``status`` is the HTTP status to answer with."""

    status = 400


class TooLarge(RequestRejected):
    """An upload, audio or text beyond its limit (HTTP 413)."""

    status = 413


class Busy(RequestRejected):
    """Every decoding slot is taken and the queue is full (HTTP 503: retry later)."""

    status = 503


class Unauthorized(RequestRejected):
    """Missing or wrong credentials (HTTP 401)."""

    status = 401


@dataclass(frozen=True)
class RequestLimits:
    """What one request may cost and how many may run or wait.

    Defaults suit a demo on a CPU: 30 s of audio (the reference's chat turns are shorter),
    an upload of at most 8 MiB (30 s of 48 kHz stereo 16-bit WAV is 5.5 MiB), one decode
    at a time, eight waiting, none waiting longer than two minutes.
    """

    max_upload_bytes: int = 8 * 1024 * 1024
    max_audio_seconds: float = 30.0
    min_audio_seconds: float = 0.1
    max_text_chars: int = 2000
    max_concurrent: int = 1
    max_queued: int = 8
    queue_timeout_s: float = 120.0

    def __post_init__(self):
        for name in ("max_upload_bytes", "max_text_chars", "max_concurrent"):
            if getattr(self, name) < 1:
                raise ValueError(f"RequestLimits.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_queued < 0 or self.queue_timeout_s <= 0:
            raise ValueError("RequestLimits: max_queued must be >= 0 and queue_timeout_s > 0")
        if not 0 < self.min_audio_seconds < self.max_audio_seconds:
            raise ValueError(
                "RequestLimits: expected 0 < min_audio_seconds < max_audio_seconds, got "
                f"{self.min_audio_seconds} and {self.max_audio_seconds}"
            )


def check_upload_size(nbytes: int, limits: RequestLimits, what: str = "upload") -> None:
    """Refuse an upload larger than ``limits.max_upload_bytes``."""
    if nbytes > limits.max_upload_bytes:
        raise TooLarge(
            f"{what} of {nbytes} bytes exceeds the limit of {limits.max_upload_bytes} bytes"
        )


def check_audio(wav: np.ndarray, fs: int, limits: RequestLimits, what: str = "audio") -> float:
    """Refuse audio outside the duration limits (samples along the first axis); return its
    duration in seconds."""
    if not isinstance(fs, (int, np.integer)) or fs <= 0:
        raise RequestRejected(f"{what}: sample rate must be a positive integer, got {fs!r}")
    seconds = np.asarray(wav).shape[0] / fs if np.ndim(wav) else 0.0
    if seconds > limits.max_audio_seconds:
        raise TooLarge(
            f"{what} of {seconds:.1f} s exceeds the limit of {limits.max_audio_seconds:g} s"
        )
    if seconds < limits.min_audio_seconds:
        raise RequestRejected(
            f"{what} of {seconds:.3f} s is shorter than {limits.min_audio_seconds:g} s"
        )
    return seconds


def check_text(text: Optional[str], limits: RequestLimits, what: str = "text") -> None:
    """Refuse text longer than ``limits.max_text_chars``."""
    if text is not None and len(text) > limits.max_text_chars:
        raise TooLarge(
            f"{what} of {len(text)} characters exceeds the limit of {limits.max_text_chars}"
        )


class AdmissionQueue:
    """A bounded queue in front of the decoder (thread-safe).

    ``with queue.slot(): decode(...)``: runs at once when a slot is free, waits while at
    most ``max_queued`` others wait, else raises :class:`Busy` without waiting.
    """

    def __init__(self, limits: RequestLimits):
        self.limits = limits
        self._slots = threading.Semaphore(limits.max_concurrent)
        self._lock = threading.Lock()
        self.admitted = 0  # running + waiting
        self.peak = 0
        self.refused = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a decoding slot for the ``with`` body."""
        capacity = self.limits.max_concurrent + self.limits.max_queued
        with self._lock:
            if self.admitted >= capacity:
                self.refused += 1
                raise Busy(
                    f"busy: {self.limits.max_concurrent} request(s) running and "
                    f"{self.limits.max_queued} waiting; try again shortly"
                )
            self.admitted += 1
            self.peak = max(self.peak, self.admitted)
        try:
            if not self._slots.acquire(timeout=self.limits.queue_timeout_s):
                with self._lock:
                    self.refused += 1
                raise Busy(
                    f"busy: waited {self.limits.queue_timeout_s:g} s for a free slot; "
                    "try again shortly"
                )
            try:
                yield
            finally:
                self._slots.release()
        finally:
            with self._lock:
                self.admitted -= 1


class Credentials:
    """Optional login: ``user:password`` pairs; empty means no login is required."""

    def __init__(self, pairs: List[Tuple[str, str]] = ()):
        self.pairs = list(pairs)

    @classmethod
    def parse(cls, text: str, source: str = AUTH_ENV) -> "Credentials":
        """Pairs from ``user:password`` entries separated by commas or new lines."""
        pairs = []
        for n, entry in enumerate(text.replace(",", "\n").splitlines(), 1):
            entry = entry.strip()
            if not entry or entry.startswith("#"):
                continue
            user, sep, password = entry.partition(":")
            if not sep or not user or not password:
                raise ValueError(f"{source}: entry {n}: expected user:password (both non-empty)")
            pairs.append((user, password))
        return cls(pairs)

    @classmethod
    def load(cls, auth_file: Optional[str] = None) -> "Credentials":
        """From ``auth_file`` (one ``user:password`` a line), else ``$ECHAT_AUTH``, else none."""
        if auth_file:
            return cls.parse(Path(auth_file).read_text(encoding="utf-8"), auth_file)
        return cls.parse(os.environ.get(AUTH_ENV, ""))

    @property
    def required(self) -> bool:
        """True when a login is needed."""
        return bool(self.pairs)

    def check(self, user: str, password: str) -> bool:
        """Constant-time comparison against every pair."""
        ok = False
        for u, p in self.pairs:
            ok |= hmac.compare_digest(u.encode(), str(user).encode()) & hmac.compare_digest(
                p.encode(), str(password).encode()
            )
        return ok

    def check_basic(self, header: Optional[str]) -> None:
        """Raise :class:`Unauthorized` unless the ``Authorization`` header is a valid login
        (or none is required)."""
        if not self.required:
            return
        if not header or not header.startswith("Basic "):
            raise Unauthorized("login required (HTTP Basic authentication)")
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise Unauthorized("malformed Authorization header") from None
        if not self.check(user, password):
            time.sleep(0.2)  # slow down guessing
            raise Unauthorized("wrong user or password")
