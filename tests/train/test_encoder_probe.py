"""train.encoder_probe (probe_encoder_labels): a linear probe of pooled encoder outputs, fit on train, scored on test."""

import numpy as np

from espnet2_echat.train.encoder_probe import probe


def _dir(root, name, labels, sign, rng):
    """A data dir whose cached encoder outputs carry the label in their mean (sign)."""
    d = root / name
    d.mkdir()
    scp, wav, lab = [], [], []
    for i, y in enumerate(labels):
        x = rng.normal(size=(20, 8)).astype(np.float32) + sign(y) * np.eye(8)[0]
        np.save(d / f"u{i}.npy", x)
        scp.append(f"u{i} {d / f'u{i}.npy'}")
        wav.append(f"u{i} /nonexistent/u{i}.wav")  # never read: the cache answers
        lab.append(f"u{i} {y}")
    for f, lines in (("encoder_out.scp", scp), ("wav.scp", wav), ("utt2gender", lab)):
        (d / f).write_text("\n".join(lines) + "\n")
    return d


def test_probe_reads_a_label_the_features_carry_and_not_one_they_do_not(tmp_path):
    rng = np.random.default_rng(0)
    labels = ["<MALE>", "<FEMALE>"] * 20
    carry = lambda y: 1.0 if y == "<MALE>" else -1.0  # noqa: E731
    _dir(tmp_path, "train_gender", labels, carry, rng)
    _dir(tmp_path, "test_gender", labels, carry, rng)
    decode = tmp_path / "decode" / "test_gender"
    decode.mkdir(parents=True)
    (decode / "keys").write_text("u0\nu1\nu2\nu3\n")
    full = probe(None, None, tmp_path, "gender", None)
    assert full == {"train": 40, "test": 40, "accuracy": 100.0}
    assert probe(None, None, tmp_path, "gender", tmp_path / "decode")["test"] == 4

    blind = tmp_path / "blind"
    blind.mkdir()
    _dir(blind, "train_gender", labels, lambda y: 0.0, rng)
    _dir(blind, "test_gender", labels, lambda y: 0.0, rng)
    assert probe(None, None, blind, "gender", None)["accuracy"] < 80.0
