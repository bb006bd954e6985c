"""Linear probe of a model's speech-encoder outputs per label
(:mod:`espnet2_echat.train.encoder_probe`): fit on ``DATA_ROOT/train_<label>``, scored on
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


def main(cmd=None) -> int:
    args = get_parser().parse_args(cmd)
    set_nthreads(args.nthreads)
    import torch  # after parsing: --help stays light

    from espnet2_echat.tasks.echat import EChatTask
    from espnet2_echat.train.encoder_probe import probe_labels

    model, _ = EChatTask.build_model_from_file(args.train_config, args.model_file, "cpu")
    model.eval()
    with torch.no_grad():
        results = probe_labels(
            model.frontend, model.encoder, args.data_root, args.labels, args.decode_root
        )
    for label, r in results.items():
        print(f"{label}: linear probe {r['accuracy']:.1f} % on {r['test']} test utterances "
              f"(fit on {r['train']})")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
