#!/usr/bin/env python3
"""Gather the results.json files below an experiment dir into ESPnet-style RESULTS.md.

``python -m espnet2_echat.bin.echat_results --exp_dir exp --out RESULTS.md [--info key=value ...]
[--train_dirs EXP ...] [--before_dir DIR --data_root DUMP] [--images_dir DIR]``

With ``--train_dirs`` RESULTS.md also shows each stage's validation loss per epoch and loss
curve; with ``--before_dir`` (decodes of the untrained model, same layout as ``--exp_dir``)
and ``--data_root`` a few hypotheses before and after training beside their references.
Paralinguistic labels always get their chance levels, 95 % interval and confusion matrix
when their results.json carries one.
"""

import argparse
import logging
from pathlib import Path
from typing import List, Optional

from espnet2_echat.scoring.results import ResultsExtras, write_results_md


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--exp_dir",
        type=Path,
        required=True,
        help="searched recursively for results.json",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="the RESULTS.md to write"
    )
    parser.add_argument(
        "--info", nargs="*", default=[], help="model info lines as key=value"
    )
    parser.add_argument(
        "--train_dirs", type=Path, nargs="*", default=[],
        help="training exp dirs (train.log, images/loss.png), in stage order",
    )
    parser.add_argument(
        "--before_dir", type=Path, default=None,
        help="decode root of the untrained model (for hypotheses before/after training)",
    )
    parser.add_argument(
        "--data_root", type=Path, default=None,
        help="the dir holding the test data dirs (references of the before/after examples)",
    )
    parser.add_argument(
        "--images_dir", type=Path, default=None,
        help="where the pictures go (default: images/ beside --out)",
    )
    parser.add_argument("--examples_per_set", type=int, default=2)
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Parse the arguments and write RESULTS.md."""
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    info = {}
    for item in args.info:
        if "=" not in item:
            raise SystemExit(f"--info {item!r}: expected key=value")
        key, value = item.split("=", 1)
        info[key] = value
    extras = ResultsExtras(
        train_dirs=args.train_dirs,
        before_root=args.before_dir,
        data_root=args.data_root,
        images_dir=args.images_dir,
        examples_per_set=args.examples_per_set,
    )
    n = write_results_md(args.exp_dir, args.out, info, extras)
    logging.info("wrote %s from %d results.json files", args.out, n)


if __name__ == "__main__":
    main()
