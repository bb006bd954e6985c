"""Read a CTranslate2 Whisper ``model.bin`` (the format faster-whisper uses) into the encoder
tensors of ``WhisperStyleEncoder`` (transformers' Whisper names).

CTranslate2 has no Python reader for its model files; the format (version 6, ``WhisperSpec``)
is small: a header (uint32 version, uint16-length-prefixed spec name, uint32 revision,
uint32 variable count), then per variable its name, uint8 rank, uint32 dims, uint8 dtype,
uint32 byte count and the raw data; aliases follow (not needed for the encoder).
The encoder's self-attention stores q, k, v fused as ``linear_0`` (rows [q; k; v]; the k bias
is zero, Whisper has none).
"""

import struct
from pathlib import Path
from typing import BinaryIO, Dict

import numpy as np
import torch

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_BFLOAT16 = 5
# CTranslate2 encoder names -> WhisperStyleEncoder names (within encoder/layer_N/ for layers)
_LAYER_NAMES = {
    "self_attention/layer_norm/gamma": "self_attn_layer_norm.weight",
    "self_attention/layer_norm/beta": "self_attn_layer_norm.bias",
    "self_attention/linear_1/weight": "self_attn.out_proj.weight",
    "self_attention/linear_1/bias": "self_attn.out_proj.bias",
    "ffn/layer_norm/gamma": "final_layer_norm.weight",
    "ffn/layer_norm/beta": "final_layer_norm.bias",
    "ffn/linear_0/weight": "fc1.weight",
    "ffn/linear_0/bias": "fc1.bias",
    "ffn/linear_1/weight": "fc2.weight",
    "ffn/linear_1/bias": "fc2.bias",
}
_TOP_NAMES = {
    "conv1/weight": "conv1.weight",
    "conv1/bias": "conv1.bias",
    "conv2/weight": "conv2.weight",
    "conv2/bias": "conv2.bias",
    "layer_norm/gamma": "layer_norm.weight",
    "layer_norm/beta": "layer_norm.bias",
    "position_encodings/encodings": "embed_positions.weight",
}
# Scalars of the spec, not tensors of the encoder.
_SCALARS = ("num_heads",)


def _read(f: BinaryIO, fmt: str):
    return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))


def _string(f: BinaryIO) -> str:
    (n,) = _read(f, "H")
    return f.read(n).decode("utf-8").rstrip("\0")


def read_ct2_variables(path: Path) -> Dict[str, torch.Tensor]:
    """Every variable of a CTranslate2 ``model.bin``, by name, in its stored dtype."""
    out = {}
    with open(path, "rb") as f:
        (version,) = _read(f, "I")
        spec = _string(f)
        if version != 6 or spec != "WhisperSpec":
            raise ValueError(f"{path}: expected a CTranslate2 v6 WhisperSpec, got v{version} {spec!r}")
        _read(f, "I")  # spec revision
        (count,) = _read(f, "I")
        for _ in range(count):
            name = _string(f)
            (rank,) = _read(f, "B")
            dims = _read(f, "I" * rank)
            (dtype,) = _read(f, "B")
            (nbytes,) = _read(f, "I")
            data = f.read(nbytes)
            if dtype == _BFLOAT16:
                raw = torch.frombuffer(bytearray(data), dtype=torch.bfloat16)
                out[name] = raw.reshape(dims)
            elif dtype in _DTYPES:
                out[name] = torch.from_numpy(np.frombuffer(data, dtype=_DTYPES[dtype]).reshape(dims).copy())
            else:
                raise ValueError(f"{path}: variable {name} has unknown dtype code {dtype}")
    return out


def ct2_encoder_state(path: Path) -> Dict[str, torch.Tensor]:
    """The encoder tensors of a CTranslate2 Whisper in transformers' ``WhisperEncoder`` names
    (``embed_positions.weight`` included, as stored)."""
    variables = read_ct2_variables(path)
    state, unknown = {}, []
    for name, value in variables.items():
        if not name.startswith("encoder/"):
            continue
        rest = name[len("encoder/") :]
        if rest in _SCALARS:
            continue
        if rest in _TOP_NAMES:
            state[_TOP_NAMES[rest]] = value
            continue
        layer, _, inner = rest.partition("/")
        if not layer.startswith("layer_"):
            unknown.append(name)
            continue
        prefix = f"layers.{layer[len('layer_'):]}."
        if inner in _LAYER_NAMES:
            state[prefix + _LAYER_NAMES[inner]] = value
        elif inner == "self_attention/linear_0/weight":
            q, k, v = value.chunk(3, dim=0)
            state.update({prefix + "self_attn.q_proj.weight": q, prefix + "self_attn.k_proj.weight": k,
                          prefix + "self_attn.v_proj.weight": v})
        elif inner == "self_attention/linear_0/bias":
            q, k, v = value.chunk(3, dim=0)
            if k.abs().max() != 0:
                raise ValueError(f"{path}: {name} has a non-zero key bias (Whisper has none)")
            state.update({prefix + "self_attn.q_proj.bias": q, prefix + "self_attn.v_proj.bias": v})
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(f"{path}: unknown encoder variables: {', '.join(sorted(unknown)[:20])}")
    return state
