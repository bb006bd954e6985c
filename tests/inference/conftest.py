"""Fixtures for inference tests: the reference's tiny checkpoint as a Speech2Response."""

import pytest

from tests.helpers import load_wav


@pytest.fixture(scope="session")
def compat_s2r(converted_dir):
    """Speech2Response in reference_compat mode (the fixture's prompts and parsing)."""
    from espnet2_echat.inference import Speech2Response

    return Speech2Response(
        converted_dir / "config.yaml", converted_dir / "model.pth", reference_compat=True
    )


@pytest.fixture(scope="session")
def fixed_s2r(converted_dir):
    """Speech2Response with the reference's bugs fixed (the default)."""
    from espnet2_echat.inference import Speech2Response

    return Speech2Response(converted_dir / "config.yaml", converted_dir / "model.pth")


@pytest.fixture(scope="session")
def wavs(osum_tiny_dir, expected):
    """The fixture's three utterances as float32 16 kHz tensors."""
    return [load_wav(osum_tiny_dir, utt) for utt in expected["utterances"]]
