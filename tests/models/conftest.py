"""Fixtures for model tests: the reference's tiny checkpoint converted once per session."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch


@pytest.fixture(scope="session")
def expected(osum_tiny_dir):
    with open(osum_tiny_dir / "expected.json", encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def converted_dir(osum_tiny_dir, tmp_path_factory):
    from espnet2_echat.convert.osum_echat import convert_osum_echat

    out = tmp_path_factory.mktemp("converted_tiny")
    convert_osum_echat(
        str(osum_tiny_dir / "model.pt"),
        str(osum_tiny_dir / "config.yaml"),
        str(osum_tiny_dir / "llm"),
        str(out),
    )
    return out


@pytest.fixture(scope="session")
def tiny_model(converted_dir):
    from espnet2_echat.tasks.echat import EChatTask

    model, _ = EChatTask.build_model_from_file(
        converted_dir / "config.yaml", converted_dir / "model.pth"
    )
    return model.eval()


def load_npy(fixture_dir, descriptor):
    return torch.from_numpy(np.load(fixture_dir / descriptor["file"]))


def load_wav(fixture_dir, utt):
    wav, sr = sf.read(fixture_dir / utt["wav"], dtype="int16")
    assert sr == 16000
    return torch.from_numpy(wav.astype(np.float32) / 32768.0)


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """max |ours - ref| / max |ref| (the fixture README's relative error)."""
    return float((ours.double() - ref.double()).abs().max() / ref.double().abs().max())
