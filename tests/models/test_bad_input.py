"""Bad checkpoints, configs and audio fail with errors that name what is wrong."""

import shutil

import pytest
import torch
import yaml

from espnet2_echat.convert.osum_echat import ConversionError, convert_osum_echat
from espnet2_echat.models.frontend import WhisperLogMel
from espnet2_echat.tasks.echat import EChatTask
from espnet2_echat.tasks.strict_loading import StrictLoadError


@pytest.fixture(scope="module")
def reference_state(osum_tiny_dir):
    return torch.load(osum_tiny_dir / "model.pt", map_location="cpu", weights_only=True)


def _convert(osum_tiny_dir, tmp_path, state=None, config_edit=None):
    ckpt = osum_tiny_dir / "model.pt"
    if state is not None:
        ckpt = tmp_path / "edited.pt"
        torch.save(state, ckpt)
    config = osum_tiny_dir / "config.yaml"
    if config_edit is not None:
        conf = yaml.safe_load(config.read_text())
        config_edit(conf)
        config = tmp_path / "edited.yaml"
        config.write_text(yaml.safe_dump(conf))
    return convert_osum_echat(str(ckpt), str(config), str(osum_tiny_dir / "llm"), str(tmp_path / "out"))


@pytest.mark.reference
def test_missing_tensor(osum_tiny_dir, tmp_path, reference_state):
    state = dict(reference_state)
    del state["speech_head.bias"]
    with pytest.raises(ConversionError, match=r"missing tensors \(1\): llm\.speech_head\.bias"):
        _convert(osum_tiny_dir, tmp_path, state)


@pytest.mark.reference
def test_extra_tensor(osum_tiny_dir, tmp_path, reference_state):
    state = dict(reference_state, **{"llama_model.extra.weight": torch.zeros(2)})
    with pytest.raises(ConversionError, match=r"unexpected tensors \(1\): llama_model\.extra\.weight"):
        _convert(osum_tiny_dir, tmp_path, state)


@pytest.mark.reference
def test_misshaped_tensor(osum_tiny_dir, tmp_path, reference_state):
    state = dict(reference_state)
    state["speech_token_emded.weight"] = torch.zeros(100, 32)
    with pytest.raises(ConversionError, match=r"speech_token_emded\.weight -> .*\(100, 32\) vs model \(4099, 32\)"):
        _convert(osum_tiny_dir, tmp_path, state)


@pytest.mark.reference
def test_wrong_config_geometry(osum_tiny_dir, tmp_path):
    def edit(conf):
        conf["encoder_conf"]["num_blocks"] = 3

    with pytest.raises(ConversionError, match=r"missing tensors .*encoder\.layers\.2\."):
        _convert(osum_tiny_dir, tmp_path, config_edit=edit)


@pytest.mark.reference
def test_unsupported_config(osum_tiny_dir, tmp_path):
    def edit(conf):
        conf["encoder_conf"]["key_bias"] = True
        conf["adapter_type"] = "osum_echat2"

    with pytest.raises(ConversionError, match=r"adapter_type='osum_echat2'.*key_bias=True"):
        _convert(osum_tiny_dir, tmp_path, config_edit=edit)


@pytest.mark.reference
def test_strict_model_file(converted_dir, tmp_path):
    work = tmp_path / "model"
    shutil.copytree(converted_dir, work)
    state = torch.load(work / "model.pth", weights_only=True)
    state.pop("adapter.proj.bias")
    state["llm.unused"] = torch.zeros(1)
    torch.save(state, work / "model.pth")
    with pytest.raises(StrictLoadError, match=r"missing keys \(1\): adapter\.proj\.bias.*unexpected keys \(1\): llm\.unused"):
        EChatTask.build_model_from_file(work / "config.yaml", work / "model.pth")


def test_wrong_sample_rate():
    with pytest.raises(ValueError, match="fs=16000 only, got fs=22050"):
        WhisperLogMel(fs=22050)


def test_placeholder_without_speech():
    from espnet2_echat.models.splice import splice_sample

    with pytest.raises(ValueError, match="audio placeholder but no audio"):
        splice_sample(lambda ids: torch.zeros(len(ids), 4), torch.tensor([1, -1, 2]), None)
