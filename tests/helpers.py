"""Plain helpers shared by the tests (fixtures live in ``tests/conftest.py``).

Golden outputs of the reference code live in the folder named by ``ECHAT_REF_FIXTURES``
(default: ``../shared/fixtures`` resolved from the repository root).
"""

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]

V = 151936  # text vocabulary of the golden set's tiny model


def reference_fixtures_dir() -> Path:
    """Return the folder holding ``osum_echat_tiny/`` and ``token2wav_tiny/``."""
    env = os.environ.get("ECHAT_REF_FIXTURES")
    if env:
        return Path(env).resolve()
    return (REPO_ROOT / ".." / "shared" / "fixtures").resolve()


def load_npy(fixture_dir, descriptor):
    return torch.from_numpy(np.load(fixture_dir / descriptor["file"]))


def load_wav(fixture_dir, utt):
    wav, sr = sf.read(fixture_dir / utt["wav"], dtype="int16")
    assert sr == 16000
    return torch.from_numpy(wav.astype(np.float32) / 32768.0)


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """max |ours - ref| / max |ref| (the fixture README's relative error)."""
    return float((ours.double() - ref.double()).abs().max() / ref.double().abs().max())
