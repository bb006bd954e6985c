"""Length bookkeeping of the encoder/adapter, and the training entry point's --help."""

import subprocess
import sys

import torch

from espnet2_echat.models.adapter import CausalConvDownsampler
from espnet2_echat.models.whisper_encoder import WhisperStyleEncoder


def test_stem_lengths_default_and_reference_compat():
    lengths, padded = torch.tensor([238, 225, 224]), 238
    fixed = WhisperStyleEncoder(80, 8, 2, 16, 1).subsample_lengths(lengths, padded)
    compat = WhisperStyleEncoder(80, 8, 2, 16, 1, reference_compat=True).subsample_lengths(
        lengths, padded
    )
    assert fixed.tolist() == [119, 113, 112]  # ceil(L / 2)
    assert compat.tolist() == [119, 112, 112]  # mask[1::2] of a 238-long mask


def test_downsampler_lengths_match_its_output():
    down = CausalConvDownsampler(4)
    for n in (1, 2, 3, 7, 8, 113):
        y, lengths = down(torch.randn(1, n, 4), torch.tensor([n]))
        assert y.shape[1] == int(lengths[0]) == -(-(-(-n // 2)) // 2)


def test_echat_train_help():
    out = subprocess.run(
        [sys.executable, "-m", "espnet2_echat.bin.echat_train", "--help"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    for option in ("--speech_adapter", "--llm_conf", "--trainable_parts", "--use_lora"):
        assert option in out.stdout
