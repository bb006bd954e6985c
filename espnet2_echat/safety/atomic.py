"""Crash-safe writes: a file or a folder appears complete or not at all.

A writer killed half-way (out of memory, a cluster's time limit, Ctrl-C) must not leave a
truncated ``text``, a config without its model, or a backup half overwritten. Everything
is first written under a temporary name in the same folder (same file system) and then
renamed over the target (``os.replace`` is atomic on POSIX).
"""

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Union

PathLike = Union[str, Path]


@contextmanager
def atomic_write(path: PathLike, mode: str = "w", encoding: str = "utf-8") -> Iterator[IO]:
    """``with atomic_write(p) as f: f.write(...)``: ``p`` is replaced only when the block
    ends without an error; otherwise the temporary file is removed and ``p`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": encoding})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            shutil.copymode(path, tmp)
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path, "w", encoding) as f:
        f.write(text)


def atomic_copy(src: PathLike, dst: PathLike) -> None:
    """Copy a file so that ``dst`` is never a partial copy."""
    with open(src, "rb") as fin, atomic_write(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)


@contextmanager
def atomic_dir(path: PathLike) -> Iterator[Path]:
    """``with atomic_dir(d) as tmp: write into tmp``: on success ``tmp`` becomes ``d`` (an
    existing ``d`` is replaced); on an error ``d`` is left as it was and ``tmp`` removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(new: PathLike, path: PathLike) -> None:
    """Move the complete folder ``new`` to ``path``, replacing what was there; the old
    folder is renamed aside first and removed only after the new one is in place."""
    new, path = Path(new), Path(path)
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.rmdir(old)
        os.replace(path, old)
    try:
        os.replace(new, path)
    except BaseException:
        if old is not None:
            os.replace(old, path)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
