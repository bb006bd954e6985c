"""How much of each label a linear probe reads from the speech encoder's outputs.

A diagnostic for a model that answers a label at chance: is the label in what the
encoder gives the adapter, or does the adapter + LLM path not use it yet? For every
``--labels`` name it fits a logistic regression on the mean and standard deviation over
time of the encoder outputs of ``DATA_ROOT/train_<label>`` (the recipe's encoder cache
when the dir has one, else encoded here) and reports its accuracy on
``DATA_ROOT/test_<label>`` (the utterances of ``DECODE_ROOT/test_<label>/keys`` when
``--decode_root`` is given, so the probe is scored on what the model was scored on)::

    python -m espnet2_echat.bin.probe_encoder_labels \\
        --train_config exp/echat_stage1_understanding/config.yaml \\
        --model_file exp/echat_stage1_understanding/valid.loss.ave.pth \\
        --data_root dump --decode_root exp/echat_stage3_empathy_tag/decode_valid.loss.ave \\
        --labels gender age emotion event --out probe.json
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

from espnet2_echat.inference.threads import add_nthreads_argument, set_nthreads


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train_config", required=True, help="a trained model's config.yaml")
    parser.add_argument("--model_file", required=True, help="its weights (the encoder is read)")
    parser.add_argument("--data_root", type=Path, required=True, help="holds train_/test_<label>")
    parser.add_argument("--decode_root", type=Path, help="test keys from <root>/test_<label>/keys")
    parser.add_argument("--labels", nargs="+", default=["gender", "age", "emotion", "event"])
    parser.add_argument("--out", type=Path, help="write the accuracies here as JSON")
    add_nthreads_argument(parser)
    return parser


def pooled_features(frontend, encoder, data_dir: Path, keys: Optional[List[str]] = None) -> Dict:
    """``{utt: mean ++ std over time}`` of the encoder outputs of a data dir's utterances."""
    import numpy as np

    from espnet2_echat.data.datadir import read_kaldi_map
    from espnet2_echat.train.encoder_cache import CACHE_SCP, encode_wav

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
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from espnet2_echat.data.datadir import read_kaldi_map

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


def main(cmd=None) -> int:
    args = get_parser().parse_args(cmd)
    set_nthreads(args.nthreads)
    import torch  # after parsing: --help stays light

    from espnet2_echat.tasks.echat import EChatTask

    model, _ = EChatTask.build_model_from_file(args.train_config, args.model_file, "cpu")
    model.eval()
    results = {}
    with torch.no_grad():
        for label in args.labels:
            results[label] = probe(model.frontend, model.encoder, args.data_root, label, args.decode_root)
            r = results[label]
            print(f"{label}: linear probe {r['accuracy']:.1f} % on {r['test']} test utterances "
                  f"(fit on {r['train']})")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
