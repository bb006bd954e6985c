"""Shared pieces of the corpus preparation scripts in ``local/``.

Each script takes the corpus root with ``--db_root``; its default is the environment
variable that ``db.sh`` sets for the corpus (e.g. ``LIBRISPEECH``), so a recipe runs
``. ./db.sh; python local/librispeech.py --out_dir data``.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Dict, Mapping

from espnet2_echat.data.datadir import validate_data_dir, write_data_dir

Utts = Dict[str, Dict[str, str]]


def get_parser(description: str, db_var: str) -> argparse.ArgumentParser:
    """Parser with ``--db_root`` (default ``$db_var``) and ``--out_dir``."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--db_root",
        type=Path,
        default=os.environ.get(db_var) or None,
        help=f"corpus root (default: ${db_var}, set in db.sh)",
    )
    parser.add_argument("--out_dir", type=Path, required=True, help="where data dirs go")
    return parser


def parse_args(parser: argparse.ArgumentParser, db_var: str, argv=None) -> argparse.Namespace:
    """Parse and check that the corpus root exists."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.db_root is None:
        parser.error(f"no corpus root: set {db_var} in db.sh or pass --db_root")
    if not Path(args.db_root).is_dir():
        parser.error(f"corpus root {args.db_root} ({db_var}) is not a directory")
    return args


def write_and_check(data_dir: Path, utts: Mapping[str, Dict[str, str]], **validate_opts) -> Path:
    """Write a data dir and fail (listing every issue) if it does not validate."""
    if not utts:
        raise RuntimeError(f"{data_dir}: no utterances found; check the corpus layout")
    write_data_dir(data_dir, utts)
    validate_opts.setdefault("require_speech_tokens", False)
    issues = validate_data_dir(data_dir, **validate_opts)
    if issues:
        raise RuntimeError("\n".join(f"{data_dir}/{i}" for i in issues))
    logging.info("%s: %d utterances", data_dir, len(utts))
    return Path(data_dir)


def one_line(text: str) -> str:
    """Collapse whitespace (Kaldi values are one line)."""
    return " ".join(text.split())
