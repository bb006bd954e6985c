"""Utterance ids that become file names.

Writers put per-utterance files under an output dir (``out/wav/{utt_id}.wav``); an id
such as ``../x`` or ``/etc/x`` would then write outside it. A *plain name* is what every
writer and the data-dir validator accept: a single path component, no whitespace or
control characters, not hidden (no leading ``.``), at most 200 bytes.
"""

import unicodedata
from pathlib import Path
from typing import Optional, Union

MAX_ID_BYTES = 200


class UnsafeNameError(ValueError):
    """An utterance id (or another name from input) is not a plain file name."""


def name_problem(name: str) -> Optional[str]:
    """Why ``name`` is not a plain name, or None when it is."""
    if not name:
        return "is empty"
    if "/" in name or "\\" in name:
        return "contains a path separator ('/' or '\\')"
    if name.startswith("."):
        return "starts with '.' (a hidden or parent-dir name)"
    if any(c.isspace() or unicodedata.category(c).startswith("C") for c in name):
        return "contains whitespace or a control character"
    if len(name.encode("utf-8")) > MAX_ID_BYTES:
        return f"is longer than {MAX_ID_BYTES} bytes"
    return None


def check_name(name: str, what: str = "utterance id") -> str:
    """Return ``name`` if it is a plain name; raise :class:`UnsafeNameError` otherwise."""
    problem = name_problem(name)
    if problem:
        raise UnsafeNameError(f"{what} {name!r} {problem}; expected a plain file name")
    return name


def child_path(directory: Union[str, Path], name: str, suffix: str = "") -> Path:
    """``directory / (name + suffix)`` for a plain ``name``, checked to stay inside."""
    check_name(name)
    directory = Path(directory)
    path = directory / f"{name}{suffix}"
    if path.resolve().parent != directory.resolve():
        raise UnsafeNameError(f"utterance id {name!r} would write outside {directory}")
    return path
