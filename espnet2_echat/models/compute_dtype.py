"""The dtype the LLM body computes in during training (``--llm_compute_dtype``, issue #13).

``float32`` runs as stored; ``bfloat16`` runs the body under ``torch.autocast`` (weights,
heads and loss stay float32); ``auto`` picks bfloat16 where the device multiplies bfloat16
natively (a CUDA device that supports it, a CPU with AMX or AVX512-BF16, where it is several
times faster than float32: ``benchmarks/small_real_step.py``) and float32 elsewhere (a CPU
without those instructions emulates bfloat16 products, slower than float32).
"""

from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Optional

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


FLOAT32_SDPA = "echat_sdpa_float32"


def _sdpa_in_float32(module, query, key, value, attention_mask, **kwargs):
    """transformers' SDPA attention with query, key and value in float32, outside autocast.

    On CPU, bfloat16 SDPA's backward runs several times slower than float32's (measured in
    ``benchmarks/small_real_step.py``), while the attention products are a small share of the
    step; the projections around it keep running in bfloat16."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    with torch.autocast(query.device.type, enabled=False):
        out, weights = sdpa_attention_forward(
            module, query.float(), key.float(), value.float(), attention_mask, **kwargs
        )
    return out.to(query.dtype), weights


@contextmanager
def float32_attention(causal_lm) -> Iterator[None]:
    """Run ``causal_lm``'s attention as :func:`_sdpa_in_float32` inside the block (a model
    that uses SDPA; others are left as they are), through transformers' attention registry."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    config = causal_lm.config
    if config._attn_implementation != "sdpa":
        yield
        return
    AttentionInterface.register(FLOAT32_SDPA, _sdpa_in_float32)
    AttentionMaskInterface.register(FLOAT32_SDPA, sdpa_mask)
    config._attn_implementation = FLOAT32_SDPA
    try:
        yield
    finally:
        config._attn_implementation = "sdpa"
