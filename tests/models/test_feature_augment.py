"""SpecAugment + SpecSub frontend: only in training, masks are zeros, subs copy earlier frames."""

import torch

from espnet2_echat.models.feature_augment import AugmentedWhisperLogMel, spec_sub
from espnet2_echat.models.frontend import WhisperLogMel


def test_eval_mode_is_the_plain_frontend():
    torch.manual_seed(0)
    wav = torch.randn(2, 16000)
    lengths = torch.tensor([16000, 12000])
    aug = AugmentedWhisperLogMel().eval()
    plain, plain_len = WhisperLogMel()(wav, lengths)
    feats, feats_len = aug(wav, lengths)
    assert torch.equal(feats, plain) and torch.equal(feats_len, plain_len)


def test_training_masks_with_zeros_within_reference_widths():
    torch.manual_seed(1)
    wav = torch.randn(1, 32000)
    lengths = torch.tensor([32000])
    aug = AugmentedWhisperLogMel(num_sub=0).train()
    plain, _ = WhisperLogMel()(wav, lengths)
    feats, _ = aug(wav, lengths)
    changed = feats != plain
    assert changed.any()
    assert torch.all(feats[changed] == 0)
    # a masked frequency bin is zero over all frames; at most 2 masks x 10 bins
    zero_bins = (feats[0] == 0).all(dim=0).sum()
    assert zero_bins <= 20
    zero_frames = (feats[0] == 0).all(dim=1).sum()
    assert zero_frames <= 100


def test_spec_sub_copies_earlier_frames():
    torch.manual_seed(2)
    feats = torch.arange(200.0).unsqueeze(1).repeat(1, 3)  # frame t holds t
    out = spec_sub(feats, num_sub=3, max_frames=30)
    moved = (out[:, 0] != feats[:, 0]).nonzero().flatten()
    assert 0 < len(moved) <= 90
    assert torch.all(out[moved, 0] < feats[moved, 0])  # every substitute comes from earlier
