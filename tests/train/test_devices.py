"""Device choice lives in one place (train/devices.py) and is the same for training,
decoding, token2wav and the demo: checked with a mocked torch.cuda and a fake torch_npu."""

import importlib.machinery
import sys
import types

import pytest
import torch

from espnet2_echat.inference import batch_decode
from espnet2_echat.train import devices


def fake_torch_npu(monkeypatch, available: bool, count: int = 1):
    """A torch_npu module as Ascend ships it, reporting ``available`` devices."""
    mod = types.ModuleType("torch_npu")
    mod.__spec__ = importlib.machinery.ModuleSpec("torch_npu", None)
    mod.npu = types.SimpleNamespace(is_available=lambda: available, device_count=lambda: count)
    contrib = types.ModuleType("torch_npu.contrib")
    shim = types.ModuleType("torch_npu.contrib.transfer_to_npu")
    contrib.transfer_to_npu = shim
    mod.contrib = contrib
    for name, m in (("torch_npu", mod), ("torch_npu.contrib", contrib),
                    ("torch_npu.contrib.transfer_to_npu", shim)):
        monkeypatch.setitem(sys.modules, name, m)
    monkeypatch.setattr(torch, "npu", types.SimpleNamespace(conv=types.SimpleNamespace()),
                        raising=False)


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_cpu_only_machine(no_cuda, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_npu", None)  # not importable
    assert devices.device_kind() == "cpu" and devices.default_dist_backend() == "gloo"
    assert devices.resolve_device("auto") == "cpu" and devices.device_for_ngpu(0) == "cpu"
    with pytest.raises(RuntimeError, match="no CUDA GPU or Ascend NPU"):
        devices.device_for_ngpu(1)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        devices.resolve_device("cuda")
    with pytest.raises(RuntimeError, match="no Ascend NPU"):
        devices.resolve_device("npu:0")
    with pytest.raises(ValueError, match="expected auto, cpu"):
        devices.resolve_device("tpu")


def test_cuda_machine(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_npu", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.device_kind() == "cuda" and devices.default_dist_backend() == "nccl"
    assert devices.resolve_device("auto") == "cuda:0"
    assert devices.resolve_device("cuda:1") == "cuda:1"
    assert devices.device_for_ngpu(2) == "cuda:0" and devices.device_for_ngpu(0) == "cpu"


def test_torch_npu_installed_without_a_device_is_not_an_npu(no_cuda, monkeypatch):
    fake_torch_npu(monkeypatch, available=False, count=0)
    assert not devices.npu_available()
    assert devices.device_kind() == "cpu" and devices.prepare_accelerator() == "cpu"
    assert not hasattr(torch.npu.conv, "allow_hf32")  # the shim was not switched on


def test_npu_machine(no_cuda, monkeypatch):
    fake_torch_npu(monkeypatch, available=True, count=8)
    assert devices.device_kind() == "npu" and devices.default_dist_backend() == "hccl"
    assert devices.supports_bf16()
    assert devices.resolve_device("auto") == "npu:0"
    assert torch.npu.conv.allow_hf32 is False  # prepare_accelerator ran (reference setting)
    assert devices.device_for_ngpu(1) == "npu:0"


def test_batch_decoding_asks_devices_not_cuda(no_cuda, monkeypatch):
    """--ngpu 1 on an NPU machine decodes on the NPU; on a CPU-only one it fails clearly."""
    monkeypatch.setitem(sys.modules, "torch_npu", None)
    with pytest.raises(RuntimeError, match="no CUDA GPU or Ascend NPU"):
        batch_decode.inference("out", ["w.scp,speech,sound"], "asr", train_config="c", model_file="m", ngpu=1)
    seen = {}

    class Stop(Exception):
        pass

    def fake_s2r(train_config, model_file, **kw):
        seen.update(kw)
        raise Stop

    fake_torch_npu(monkeypatch, available=True)
    monkeypatch.setattr(batch_decode, "Speech2Response", fake_s2r)
    with pytest.raises(Stop):
        batch_decode.inference("out", ["w.scp,speech,sound"], "asr", train_config="c", model_file="m", ngpu=1)
    assert seen["device"] == "npu:0"


def test_token2wav_training_maps_cuda_onto_an_npu(no_cuda, monkeypatch):
    """token2wav training goes through the same accelerator set-up as the speech LLM's."""
    from espnet2.tasks.abs_task import AbsTask

    from espnet2_echat.tasks.token2wav import Token2WavTask

    fake_torch_npu(monkeypatch, available=True)
    calls = []
    monkeypatch.setattr(AbsTask, "main_worker", classmethod(lambda cls, args: calls.append(args)))
    Token2WavTask.main_worker("args")
    assert calls == ["args"] and torch.npu.conv.allow_hf32 is False
    assert Token2WavTask.get_parser().get_default("dist_backend") == "hccl"
