"""Shared pieces of the corpus preparation scripts in ``local/``.

Each script takes the corpus root with ``--db_root``; its default is the environment
variable that ``db.sh`` sets for the corpus (e.g. ``LIBRISPEECH``), so a recipe runs
``. ./db.sh; python local/librispeech.py --out_dir data``. The root is the folder the
corpus's documented download-and-extract steps leave (e.g. ``LibriSpeech/``); the folder
above it is accepted too (:func:`release_root`).

Every data dir a script writes is listed with its role (``train``, ``valid`` or ``test``)
in ``<out_dir>/set_roles`` (:func:`record_role`); ``echat.sh`` takes its default
``--train_sets``/``--valid_sets``/``--test_sets`` from that file and prints the mapping.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from pathlib import Path
from typing import Dict, List, Mapping

from espnet2_echat.data.datadir import read_kaldi_map, validate_data_dir, write_data_dir, write_kaldi_map

Utts = Dict[str, Dict[str, str]]
ROLES = ("train", "valid", "test")
ROLES_FILE = "set_roles"
# LibriSpeech/LibriTTS-style subset folder names: train-clean-100, dev-other, test-clean ...
_SUBSET = re.compile(r"^(train|dev|test)-(clean|other)(-\d+)?$")


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


def release_root(root: Path, *names: str) -> Path:
    """``root/<name>`` for the first of ``names`` that exists there, else ``root``.

    Users set a corpus variable either to the extracted folder (``.../LibriSpeech``) or
    to the folder they extracted into (ESPnet's ``LIBRISPEECH=downloads``).
    """
    for name in names:
        if (Path(root) / name).is_dir():
            return Path(root) / name
    return Path(root)


def subsets_on_disk(root: Path) -> List[str]:
    """LibriSpeech/LibriTTS subset folders present under ``root`` (users often have some)."""
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir() and _SUBSET.match(p.name))


def role_of_split(split: str) -> str:
    """``train``/``valid``/``test`` from a split name (``dev``, ``val``, ``test-other``...)."""
    head = re.split(r"[-_]", split.lower())[0]
    if head in ("dev", "val", "valid", "validation"):
        return "valid"
    if head in ("test", "eval"):
        return "test"
    return "train"


def record_role(out_dir: Path, name: str, role: str) -> None:
    """Record a data dir's role in ``<out_dir>/set_roles`` (``name role`` lines, sorted)."""
    if role not in ROLES:
        raise ValueError(f"role of {name} must be one of {ROLES}, got {role!r}")
    path = Path(out_dir) / ROLES_FILE
    roles = read_kaldi_map(path) if path.is_file() else {}
    roles[name] = role
    write_kaldi_map(path, roles)


def write_and_check(
    data_dir: Path, utts: Mapping[str, Dict[str, str]], role: str, **validate_opts
) -> Path:
    """Write a data dir, record its role, and fail (listing every issue) if it is invalid.

    Audio files are not opened here: one unreadable file of a large corpus is the format
    stage's to drop and report, not a reason to lose the whole corpus.
    """
    if not utts:
        raise RuntimeError(f"{data_dir}: no utterances found; check the corpus layout")
    write_data_dir(data_dir, utts)
    validate_opts.setdefault("require_speech_tokens", False)
    # audio is opened (and dropped with its reason if unreadable) by the format stage
    validate_opts.setdefault("check_audio", False)
    validate_opts.setdefault("require_targets", role != "test")
    issues = validate_data_dir(data_dir, **validate_opts)
    if issues:
        raise RuntimeError("\n".join(f"{data_dir}/{i}" for i in issues))
    record_role(Path(data_dir).parent, Path(data_dir).name, role)
    logging.info("%s: %d utterances (%s)", data_dir, len(utts), role)
    return Path(data_dir)


def report_skipped(where: str, count: int, reason: str) -> None:
    """One warning line for items of a corpus left out on purpose (never silently)."""
    if count:
        logging.warning("%s: %d item(s) left out: %s", where, count, reason)


def one_line(text: str) -> str:
    """Collapse whitespace (Kaldi values are one line)."""
    return " ".join(text.split())
