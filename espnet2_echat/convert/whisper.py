"""Load Whisper encoder weights (HF dir or hub name, OpenAI ``.pt``, WeNet ``.pt``) into
``WhisperStyleEncoder``, e.g. ``openai/whisper-medium`` for a from-scratch stage 1."""

import logging
import os
from typing import Dict

import torch

from espnet2_echat.convert.key_mapping import (
    HF_WHISPER_RULES,
    OPENAI_WHISPER_RULES,
    WENET_WHISPER_RULES,
    WHISPER_POSITION_KEYS,
    rename,
)
from espnet2_echat.models.whisper_encoder import WhisperStyleEncoder, whisper_sinusoids


def _strip(state: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def whisper_encoder_state(source: str) -> Dict[str, torch.Tensor]:
    """Encoder tensors of a Whisper model, renamed to ``WhisperStyleEncoder``'s keys.

    ``source`` is a HF model dir or hub name (``openai/whisper-medium``), an OpenAI
    checkpoint (``medium.pt``: ``{"dims", "model_state_dict"}``) or a WeNet checkpoint
    (``encoder.embed.conv.0.weight``...). Positional tables are checked against the
    sinusoid and not returned (the encoder regenerates them).
    """
    if os.path.isfile(source):
        raw = torch.load(source, map_location="cpu", weights_only=True)
        raw = raw.get("model_state_dict", raw)
        if any(k.startswith("encoder.blocks.") for k in raw):
            enc, rules = _strip(raw, "encoder."), OPENAI_WHISPER_RULES
        elif any(k.startswith("encoder.encoders.") for k in raw):
            enc, rules = _strip(raw, "encoder."), WENET_WHISPER_RULES
        else:
            raise ValueError(f"{source}: neither an OpenAI nor a WeNet Whisper checkpoint")
    else:
        from transformers import WhisperModel

        raw = WhisperModel.from_pretrained(source).encoder.state_dict()
        enc, rules = raw, HF_WHISPER_RULES
    state, unknown = {}, []
    for key, value in enc.items():
        if key in WHISPER_POSITION_KEYS:
            table = value.reshape(-1, value.shape[-1])
            expected = whisper_sinusoids(table.shape[0], table.shape[1])
            if not torch.allclose(table.float(), expected, atol=1e-4):
                raise ValueError(f"{source}: {key} is not the Whisper sinusoid table")
            continue
        new = rename(key, rules)
        if new is None:
            unknown.append(key)
        else:
            state[new] = value
    if unknown:
        raise ValueError(f"{source}: unknown encoder tensors: {', '.join(sorted(unknown)[:20])}")
    return state


def load_whisper_encoder(encoder: WhisperStyleEncoder, source: str) -> None:
    """Load Whisper weights into ``encoder`` strictly (every parameter, matching shapes)."""
    from espnet2_echat.tasks.strict_loading import load_state_dict_strict

    state = whisper_encoder_state(source)
    dtype = next(encoder.parameters()).dtype
    load_state_dict_strict(encoder, {k: v.to(dtype) for k, v in state.items()}, source)
    logging.info(f"loaded Whisper encoder weights from {source} ({len(state)} tensors)")
