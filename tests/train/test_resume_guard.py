"""A checkpoint truncated by a kill is moved aside instead of breaking --resume."""

import torch

from espnet2_echat.train.resume import discard_corrupt_checkpoint


def test_truncated_checkpoint_is_moved_aside(tmp_path):
    torch.save({"model": torch.zeros(1000)}, tmp_path / "checkpoint.pth")
    assert not discard_corrupt_checkpoint(str(tmp_path))  # a complete file stays
    data = (tmp_path / "checkpoint.pth").read_bytes()
    (tmp_path / "checkpoint.pth").write_bytes(data[: len(data) // 2])
    assert discard_corrupt_checkpoint(str(tmp_path))
    assert not (tmp_path / "checkpoint.pth").exists()
    assert len(list(tmp_path.glob("checkpoint.pth.corrupt-*"))) == 1
    assert not discard_corrupt_checkpoint(str(tmp_path))  # nothing left to move
