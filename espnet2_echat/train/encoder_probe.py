"""How much of each label a linear probe reads from a speech encoder's outputs.

A diagnostic for a model that answers a label at chance: is the label in what the encoder
gives the adapter, or does the adapter + LLM path not use it yet? A logistic regression is
fit on the mean and standard deviation over time of the encoder outputs of
``train_<label>`` (the recipe's encoder cache when the dir has one, else encoded here) and
scored on ``test_<label>``. Entry point: ``python -m espnet2_echat.bin.probe_encoder_labels``.
"""

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from espnet2_echat.data.datadir import read_kaldi_map
from espnet2_echat.train.encoder_cache import CACHE_SCP, encode_wav


def pooled_features(frontend, encoder, data_dir: Path, keys: Optional[List[str]] = None) -> Dict:
    """``{utt: mean ++ std over time}`` of the encoder outputs of a data dir's utterances."""
    cached = read_kaldi_map(data_dir / CACHE_SCP) if (data_dir / CACHE_SCP).is_file() else {}
    wavs = read_kaldi_map(data_dir / "wav.scp")
    out = {}
    for utt in keys if keys is not None else list(wavs):
        if utt in cached:
            x = np.load(cached[utt]).astype(np.float32)
        else:
            x = encode_wav(frontend, encoder, wavs[utt], utt, data_dir)
        out[utt] = np.concatenate([x.mean(0), x.std(0)])
    return out


def probe(frontend, encoder, data_root: Path, label: str, decode_root: Optional[Path]) -> Dict:
    """Fit on ``train_<label>``, score on ``test_<label>``; accuracy and counts."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train, test = data_root / f"train_{label}", data_root / f"test_{label}"
    keys = None
    if decode_root is not None:
        keys = (decode_root / f"test_{label}" / "keys").read_text(encoding="utf-8").split()
    x_train, x_test = pooled_features(frontend, encoder, train), pooled_features(
        frontend, encoder, test, keys
    )
    y_train, y_test = read_kaldi_map(train / f"utt2{label}"), read_kaldi_map(test / f"utt2{label}")
    scaler = StandardScaler().fit(np.stack(list(x_train.values())))
    clf = LogisticRegression(max_iter=2000, C=0.1).fit(
        scaler.transform(np.stack(list(x_train.values()))), [y_train[u] for u in x_train]
    )
    predicted = clf.predict(scaler.transform(np.stack(list(x_test.values()))))
    correct = sum(p == y_test[u] for p, u in zip(predicted, x_test))
    return {"train": len(x_train), "test": len(x_test), "accuracy": 100.0 * correct / len(x_test)}


def probe_labels(
    frontend, encoder, data_root: Path, labels: Sequence[str], decode_root: Optional[Path] = None
) -> Dict[str, Dict]:
    """:func:`probe` for each of ``labels``; ``{label: {train, test, accuracy}}``."""
    return {label: probe(frontend, encoder, data_root, label, decode_root) for label in labels}
