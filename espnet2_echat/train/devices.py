"""Device choice for training and decoding, in one place: CUDA, Ascend NPU or CPU.

ESPnet's trainer speaks CUDA (``--ngpu``, ``torch.cuda``, ``nccl``). On Ascend, the
``torch_npu`` package's ``transfer_to_npu`` module maps those CUDA calls onto the NPU, as
the reference's ``wenet/bin/train.py`` does, and collectives use ``hccl``.
"""

from __future__ import annotations

import importlib.util
import logging

import torch


def npu_available() -> bool:
    """True when ``torch_npu`` is importable (the Ascend build of torch is installed)."""
    return importlib.util.find_spec("torch_npu") is not None


def device_kind() -> str:
    """``npu``, ``cuda`` or ``cpu``: the accelerator this process will use."""
    if npu_available():
        return "npu"
    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def default_dist_backend() -> str:
    """Collective backend for the device kind: hccl (NPU), nccl (CUDA), gloo (CPU)."""
    return {"npu": "hccl", "cuda": "nccl", "cpu": "gloo"}[device_kind()]


def supports_bf16() -> bool:
    """bf16 autocast is available (Ampere+ GPUs, Ascend 910B)."""
    kind = device_kind()
    if kind == "cuda":
        return torch.cuda.is_bf16_supported()
    return kind == "npu"


def prepare_accelerator() -> str:
    """Make ESPnet's CUDA code paths run on the accelerator; returns the device kind.

    On Ascend this imports ``torch_npu`` and its ``transfer_to_npu`` shim (so ``--ngpu``,
    ``.cuda()`` and autocast reach the NPU) and disables HF32 convolutions as the
    reference does. Elsewhere it changes nothing.
    """
    kind = device_kind()
    if kind == "npu":
        import torch_npu  # noqa: F401
        from torch_npu.contrib import transfer_to_npu  # noqa: F401

        torch.npu.conv.allow_hf32 = False
        logging.info("Ascend NPU: torch_npu loaded, CUDA calls map to the NPU")
    return kind
