"""The Griffin-Lim stand-in vocoder: any number of mel frames, the output length follows."""

import pytest
import torch

from espnet2_echat.models.token2wav.griffin_lim import GriffinLimStandInVocoder


@pytest.mark.parametrize("frames", [1, 2, 3, 5, 40])
def test_short_and_long_mels_give_frames_times_hop_samples(frames):
    vocoder = GriffinLimStandInVocoder(n_iter=4)
    mel = torch.randn(1, 80, frames) - 4.0
    wav, source = vocoder.inference(mel)
    assert wav.shape == (1, frames * 256) and source.shape == (1, 1, 0)
    assert torch.isfinite(wav).all() and wav.abs().max() <= 0.99


def test_appended_frames_do_not_change_a_long_reply():
    """Padding only applies below the STFT's minimum: a long mel's audio is Griffin-Lim's own."""
    vocoder = GriffinLimStandInVocoder(n_iter=4)
    mel = torch.randn(1, 80, 30) - 4.0
    magnitude = torch.clamp(vocoder.inverse_mel @ torch.exp(mel), min=0.0)
    expected = torch.clamp(vocoder.griffin_lim(magnitude)[..., : 30 * 256], -0.99, 0.99)
    got = vocoder.inference(mel)[0]
    torch.testing.assert_close(got[..., : expected.shape[-1]], expected)
