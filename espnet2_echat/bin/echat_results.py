#!/usr/bin/env python3
"""Gather the results.json files below an experiment dir into ESPnet-style RESULTS.md.

``python -m espnet2_echat.bin.echat_results --exp_dir exp --out RESULTS.md [--info key=value ...]``
"""

import argparse
import logging
from pathlib import Path
from typing import List, Optional

from espnet2_echat.scoring.results import write_results_md


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
    n = write_results_md(args.exp_dir, args.out, info)
    logging.info("wrote %s from %d results.json files", args.out, n)


if __name__ == "__main__":
    main()
