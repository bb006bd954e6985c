"""Sinusoidal positional tables, the check that a stored table is one, and a positional
encoding that computes with the table it holds.

Two layouts occur in OSUM-EChat:

* Whisper's (``whisper_sinusoids``): sin in the first half of the channels, cos in the second,
  timescales ``10000 ** (i / (C/2 - 1))``; the encoder's table.
* ESPnet/WeNet's (``interleaved_sinusoids``): sin on even channels, cos on odd ones,
  timescales ``10000 ** (2i / C)``; the adapter transformer's table.

Checkpoints store these tables, and not always as the float32 formula gives them: OpenAI
saved every released Whisper in float16, so its table is the sinusoid rounded to float16
(up to ~2.4e-4 away); a table computed in float32 by another torch build differs in the last
bits of its angles, which at position p moves the value by up to ~p * 2**-23. A stored table
is accepted (:func:`check_sinusoid_table`) when it is the exact sinusoid up to those
roundings, and refused when it is anything else (shifted, scaled, random).

Which table the model computes with: the stored one (the reference's WeNet modules keep the
table as a persistent buffer and compute with whatever the checkpoint holds, and so do
openai-whisper and transformers' ``WhisperEncoder``). The encoder and the adapter therefore
hold their tables as persistent buffers (in ``model.pth``); a table is regenerated from the
formula only where no checkpoint supplies one (a model built from config), or for rows beyond
a shorter stored table (Whisper stores 1500 rows, the encoder keeps 30000).
"""

import math
from typing import Callable, Dict

import torch
from torch import nn

# Per element, a stored value v of the exact sinusoid s(a) at angle a = p * f is accepted when
# |v - s(a)| <= ANGLE_ULPS * (1 + |ln f|) * eps32 * a + storage rounding of s(a) + ABS_SLACK:
# f = exp(-x) computed in float32 carries the rounding of its exponent x (relative error
# ~|x| * eps32) plus that of exp and of the product p * f, and the value was then rounded to
# the storage dtype. A shifted or rescaled table misses this by orders of magnitude.
ANGLE_ULPS = 2.0
ABS_SLACK = 1e-6
# Half an ulp, relative, of the dtypes a table may have been rounded to (in this order).
STORAGE_ROUNDING: Dict[str, float] = {
    "float32": 2.0**-24,
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
}


def whisper_angles(length: int, channels: int) -> torch.Tensor:
    """(length, channels // 2) float64 angles of Whisper's table."""
    increment = math.log(10000) / (channels // 2 - 1)
    inv_timescales = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float64))
    return torch.arange(length, dtype=torch.float64)[:, None] * inv_timescales[None, :]


def whisper_sinusoids(length: int, channels: int) -> torch.Tensor:
    """OpenAI Whisper's positional table, computed in float32 as openai-whisper does."""
    increment = math.log(10000) / (channels // 2 - 1)
    inv_timescales = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float32))
    scaled = torch.arange(length, dtype=torch.float32)[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=1)


def interleaved_angles(length: int, channels: int) -> torch.Tensor:
    """(length, channels // 2) float64 angles of ESPnet's ``PositionalEncoding`` table."""
    div = torch.exp(
        torch.arange(0, channels, 2, dtype=torch.float64) * -(math.log(10000.0) / channels)
    )
    return torch.arange(length, dtype=torch.float64)[:, None] * div[None, :]


def interleaved_sinusoids(length: int, channels: int) -> torch.Tensor:
    """ESPnet's ``PositionalEncoding`` table (float32, as ESPnet computes it)."""
    from espnet.nets.pytorch_backend.transformer.embedding import PositionalEncoding

    return PositionalEncoding(channels, 0.0, max_len=length).pe[0]


def _whisper_exact(angles: torch.Tensor) -> torch.Tensor:
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _interleaved_exact(angles: torch.Tensor) -> torch.Tensor:
    table = torch.empty(angles.shape[0], 2 * angles.shape[1], dtype=angles.dtype)
    table[:, 0::2], table[:, 1::2] = angles.sin(), angles.cos()
    return table


_LAYOUTS: Dict[str, tuple] = {
    "whisper": (whisper_angles, _whisper_exact, lambda a: torch.cat([a, a], dim=1)),
    "interleaved": (
        interleaved_angles,
        _interleaved_exact,
        lambda a: a.repeat_interleave(2, dim=1),
    ),
}


def check_sinusoid_table(stored: torch.Tensor, layout: str, name: str) -> str:
    """Check that ``stored`` ((L, C) or (1, L, C)) is the ``layout`` sinusoid up to rounding.

    Returns the storage rounding that explains it (``float32``, ``float16`` or ``bfloat16``:
    the first whose tolerance holds). Raises ValueError naming ``name``, the worst position
    and channel and the deviation there when no rounding explains it.
    """
    if layout not in _LAYOUTS:
        raise ValueError(f"unknown sinusoid layout {layout!r}; one of {sorted(_LAYOUTS)}")
    table = stored.reshape(-1, stored.shape[-1]).double()
    length, channels = table.shape
    if channels % 2:
        raise ValueError(f"{name}: a sinusoid table has an even number of channels, got {channels}")
    angles_of, exact_of, per_channel = _LAYOUTS[layout]
    angles = angles_of(length, channels)
    exact = exact_of(angles)
    error = (table - exact).abs()
    frequencies = angles[1] if length > 1 else torch.ones(angles.shape[1], dtype=angles.dtype)
    ulps = ANGLE_ULPS * (1.0 + frequencies.log().abs())
    angle_slack = 2.0**-23 * per_channel(angles * ulps)
    for dtype, rounding in STORAGE_ROUNDING.items():
        if bool((error <= angle_slack + rounding * exact.abs() + ABS_SLACK).all()):
            return dtype
    worst = int(error.argmax())
    pos, chan = divmod(worst, channels)
    raise ValueError(
        f"{name}: not the {layout} sinusoid table (nor its float16/bfloat16 rounding): "
        f"position {pos}, channel {chan} holds {float(table[pos, chan]):.6g}, the sinusoid is "
        f"{float(exact[pos, chan]):.6g}"
    )


def table_with_stored_rows(stored: torch.Tensor, length: int, formula: Callable) -> torch.Tensor:
    """(length, C) float32: the stored rows first, ``formula(length, C)`` rows after them."""
    stored = stored.reshape(-1, stored.shape[-1]).float()
    if stored.shape[0] >= length:
        return stored[:length].clone()
    return torch.cat([stored, formula(length, stored.shape[1])[stored.shape[0] :]])


class StoredPositionalEncoding(nn.Module):
    """ESPnet's ``PositionalEncoding`` forward (``x * sqrt(d) + pe``, dropout) with the table
    held as a persistent buffer, so that the model computes with the table a checkpoint
    stored (ESPnet's own keeps it as a plain attribute and regenerates it)."""

    def __init__(self, d_model: int, dropout_rate: float, max_len: int = 5000):
        super().__init__()
        self.xscale = math.sqrt(d_model)
        self.dropout = nn.Dropout(dropout_rate)
        self.register_buffer("pe", interleaved_sinusoids(max_len, d_model)[None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(1) > self.pe.size(1):
            raise ValueError(
                f"input of {x.size(1)} frames exceeds the adapter's positional table "
                f"({self.pe.size(1)} positions)"
            )
        return self.dropout(x * self.xscale + self.pe[:, : x.size(1)].to(x.dtype))
