"""Device choice for training, decoding, token2wav and the demo, in one place: CUDA,
Ascend NPU or CPU.

ESPnet's trainer speaks CUDA (``--ngpu``, ``torch.cuda``, ``nccl``). On Ascend, the
``torch_npu`` package's ``transfer_to_npu`` module maps those CUDA calls onto the NPU, as
the reference's ``wenet/bin/train.py`` does, and collectives use ``hccl``. An NPU is used
only when ``torch_npu`` imports *and* reports a device (installing the package on a
machine without an NPU changes nothing).

Inference code takes a device name: ``auto`` (the accelerator if there is one, else CPU),
``cpu``, ``cuda[:i]`` or ``npu[:i]`` (:func:`resolve_device`); batch decoding maps its
``--ngpu`` with :func:`device_for_ngpu`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging

import torch


def npu_available() -> bool:
    """True when ``torch_npu`` imports and at least one NPU device is present."""
    if importlib.util.find_spec("torch_npu") is None:
        return False
    try:
        torch_npu = importlib.import_module("torch_npu")
        return bool(torch_npu.npu.is_available()) and torch_npu.npu.device_count() > 0
    except Exception as e:  # a broken Ascend install: say why, use no NPU
        logging.warning("torch_npu is installed but unusable (%s); not using an NPU", e)
        return False


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


def resolve_device(device: str = "auto") -> str:
    """A torch device string for ``auto``, ``cpu``, ``cuda[:i]`` or ``npu[:i]``.

    ``auto`` is the accelerator of :func:`device_kind` (index 0) or ``cpu``. Asking for a
    kind that is not present fails with a clear message instead of a late CUDA error.
    """
    name = str(device).strip().lower()
    if name == "auto":
        kind = device_kind()
        name = "cpu" if kind == "cpu" else f"{kind}:0"
    kind = name.split(":", 1)[0]
    if kind not in ("cpu", "cuda", "npu"):
        raise ValueError(f"device {device!r}: expected auto, cpu, cuda[:i] or npu[:i]")
    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r}: no CUDA device is available")
    if kind == "npu":
        if not npu_available():
            raise RuntimeError(f"device {device!r}: no Ascend NPU is available")
        prepare_accelerator()
    return name


def device_for_ngpu(ngpu: int) -> str:
    """ESPnet's ``--ngpu``: 0 is the CPU, more the accelerator (CUDA or NPU), which must exist."""
    if ngpu <= 0:
        return "cpu"
    kind = device_kind()
    if kind == "cpu":
        raise RuntimeError(f"--ngpu {ngpu}: no CUDA GPU or Ascend NPU is available (use --ngpu 0)")
    return f"{kind}:0"


class AcceleratorTaskMixin:
    """For an ESPnet ``AbsTask``: map CUDA onto an Ascend NPU (when one exists) in the main
    process and in every spawned worker, before ESPnet's CUDA code runs."""

    @classmethod
    def main(cls, args=None, cmd=None):
        prepare_accelerator()
        super().main(args=args, cmd=cmd)

    @classmethod
    def main_worker(cls, args):
        prepare_accelerator()
        super().main_worker(args)
