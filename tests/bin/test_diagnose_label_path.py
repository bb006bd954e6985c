"""``diagnose_label_path --mode oracle``: each utterance's last valid adapter frame becomes the
learned vector of its label; every other frame and the lengths are the adapter's own."""

import torch

from espnet2_echat.bin.diagnose_label_path import install_oracle
from espnet2_echat.models.adapter import EChatAdapter


def test_the_oracle_replaces_only_the_last_valid_frame():
    torch.manual_seed(0)
    adapter = EChatAdapter(16, 24, attention_heads=2, linear_units=32, num_blocks=1,
                           dropout_rate=0.0).eval()
    x, lengths = torch.randn(3, 40, 16), torch.tensor([40, 23, 9])
    with torch.no_grad():
        frames, frame_lengths = adapter(x, lengths)
    current = {"label": torch.tensor([1, 0, 1])}
    oracle = install_oracle(adapter, 2, current)
    with torch.no_grad():
        oracle.copy_(torch.randn(2, 24))
    out, out_lengths = adapter(x, lengths)
    assert torch.equal(out_lengths, frame_lengths)
    for row, n in enumerate(frame_lengths.tolist()):
        torch.testing.assert_close(out[row, n - 1], oracle[current["label"][row]])
        torch.testing.assert_close(out[row, : n - 1], frames[row, : n - 1])
    out[:, :].sum().backward()
    assert oracle.grad is not None and torch.count_nonzero(oracle.grad) > 0
