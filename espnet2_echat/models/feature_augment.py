"""SpecAugment + SpecSub on the Whisper log-mel features, training only
(docs/data_pipeline.md#augmentation).

The reference augments features in its data pipeline: 2 time masks of <= 50 frames and
2 frequency masks of <= 10 bins set to 0 (SpecAugment), then 3 substitutions of <= 30
frames by earlier frames (WeNet's SpecSub). EChatModel takes waveforms and computes the
features itself, so the augmentation lives in a frontend: ``--frontend
whisper_logmel_specaug``. The masks are ESPnet's ``SpecAug``; SpecSub has no ESPnet
counterpart and is written here. Random draws use torch's RNG (seeded per epoch by
ESPnet's trainer), so a resumed run augments identically.
"""

from typing import Tuple

import torch
from espnet2.asr.specaug.specaug import SpecAug

from espnet2_echat.models.frontend import WhisperLogMel


def spec_sub(feats: torch.Tensor, num_sub: int = 3, max_frames: int = 30) -> torch.Tensor:
    """Replace ``num_sub`` random spans (<= ``max_frames``) of (T, D) feats by earlier frames."""
    out = feats.clone()
    length = feats.shape[0]
    for _ in range(num_sub):
        if length < 2:
            break
        start = int(torch.randint(0, length - 1, ()))
        width = int(torch.randint(1, max_frames + 1, ()))
        end = min(length, start + width)
        shift = int(torch.randint(0, start + 1, ()))
        out[start:end] = feats[start - shift : end - shift]
    return out


class AugmentedWhisperLogMel(WhisperLogMel):
    """WhisperLogMel that applies SpecAugment and SpecSub in training mode only."""

    def __init__(
        self,
        fs: int = 16000,
        n_fft: int = 400,
        hop_length: int = 160,
        n_mels: int = 80,
        num_time_mask: int = 2,
        max_time_mask: int = 50,
        num_freq_mask: int = 2,
        max_freq_mask: int = 10,
        num_sub: int = 3,
        max_sub_frames: int = 30,
    ):
        super().__init__(fs=fs, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
        self.specaug = SpecAug(
            apply_time_warp=False,
            apply_freq_mask=num_freq_mask > 0,
            freq_mask_width_range=(0, max_freq_mask + 1),
            num_freq_mask=num_freq_mask,
            apply_time_mask=num_time_mask > 0,
            time_mask_width_range=(0, max_time_mask + 1),
            num_time_mask=num_time_mask,
            replace_with_zero=True,
        )
        self.num_sub = num_sub
        self.max_sub_frames = max_sub_frames

    def forward(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        feats, lengths = super().forward(speech, speech_lengths)
        if not self.training or feats.shape[1] == 0:
            return feats, lengths
        feats, _ = self.specaug(feats, lengths)
        if self.num_sub > 0:
            for i, n in enumerate(lengths.tolist()):
                feats[i, :n] = spec_sub(feats[i, :n], self.num_sub, self.max_sub_frames)
        return feats, lengths
