"""The dtype the LLM body computes in during training (``--llm_compute_dtype``, issue #13).

``float32`` runs as stored; ``bfloat16`` runs the body under ``torch.autocast`` (weights,
heads and loss stay float32); ``auto`` picks bfloat16 where the device multiplies bfloat16
natively (a CUDA device that supports it, a CPU with AMX or AVX512-BF16, where it is several
times faster than float32: ``benchmarks/small_real_step.py``) and float32 elsewhere (a CPU
without those instructions emulates bfloat16 products, slower than float32).
"""

from functools import lru_cache
from pathlib import Path
from typing import Optional

import torch

LLM_COMPUTE_DTYPES = ("float32", "bfloat16", "auto")


@lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """True when the CPU flags (Linux ``/proc/cpuinfo``) name AMX-BF16 or AVX512-BF16."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def autocast_dtype(name: str, device_type: str) -> Optional[torch.dtype]:
    """The autocast dtype for ``--llm_compute_dtype name`` on ``device_type``, or None (no
    autocast of our own: the body runs as stored, under any outer autocast)."""
    if name not in LLM_COMPUTE_DTYPES:
        raise ValueError(f"llm_compute_dtype must be one of {LLM_COMPUTE_DTYPES}, got {name!r}")
    if name == "auto":
        if device_type == "cuda":
            native = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        else:
            native = device_type == "cpu" and cpu_has_native_bf16()
        name = "bfloat16" if native else "float32"
    return torch.bfloat16 if name == "bfloat16" else None
