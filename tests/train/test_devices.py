"""Device choice lives in one place and answers consistently on this machine."""

import importlib.util

import torch

from espnet2_echat.train import devices


def test_device_kind_and_backend_agree():
    kind = devices.device_kind()
    if importlib.util.find_spec("torch_npu") is not None:
        assert kind == "npu"
    elif torch.cuda.is_available():
        assert kind == "cuda"
    else:
        assert kind == "cpu"
    assert devices.default_dist_backend() == {"npu": "hccl", "cuda": "nccl", "cpu": "gloo"}[kind]
    assert devices.prepare_accelerator() == kind


def test_npu_path_is_taken_when_torch_npu_exists(monkeypatch):
    monkeypatch.setattr(devices, "npu_available", lambda: True)
    assert devices.device_kind() == "npu"
    assert devices.default_dist_backend() == "hccl"
    assert devices.supports_bf16()
