#!/usr/bin/env python3
"""EChat-1500H / EChat-eval -> data dirs.

The reference README releases OSUM-EChat data in its own formats: raw JSONL
(``data.list``), shards (``shards_list.txt`` of WeNet-style tars) or the combine type
(``combines_list.txt`` + ``combines_tar_root.txt``), see docs/data_pipeline.md#osum-formats.
This script converts such lists under ``$ECHAT`` with :func:`osum_to_datadir`; samples with
problems are reported (file and line, or tar and member) and left out, and the exit status is 1.

Without ``--input`` every ``data.list`` (raw) and ``shards_list.txt`` (shard) under the
root (up to three folders deep) is converted into ``echat_<its folder path with _>``; a
folder path naming ``test``/``eval`` makes a test set, ``dev``/``valid`` a validation
set, anything else a training set. Example of one list:
``python local/echat.py --input EChat-1500H/shards_list.txt --data_type shard
--name echat1500h_train --out_dir data``.
"""

import re
import sys
from pathlib import Path
from typing import List, Tuple

from prep_common import ROLES, get_parser, parse_args, record_role

from espnet2_echat.data.osum_format import osum_to_datadir

DB_VAR = "ECHAT"
LIST_TYPES = {"data.list": "raw", "shards_list.txt": "shard"}


def discover(root: Path) -> List[Tuple[Path, str, str, str]]:
    """``(list file, data type, data dir name, role)`` of every list under ``root``."""
    found = []
    for depth in range(4):
        for name, data_type in LIST_TYPES.items():
            for path in sorted(root.glob("/".join(["*"] * depth + [name]))):
                parts = [p for p in path.parent.relative_to(root).parts]
                words = re.split(r"[^a-z0-9]+", " ".join(parts).lower())
                role = "train"
                if {"test", "eval"} & set(words) or any(w.endswith("eval") for w in words):
                    role = "test"
                elif {"dev", "valid", "val"} & set(words):
                    role = "valid"
                tag = re.sub(r"[^A-Za-z0-9]+", "_", "_".join(parts)).strip("_").lower()
                found.append((path, data_type, f"echat_{tag}" if tag else "echat", role))
    return found


def main(argv=None) -> int:
    """Command-line entry; exit status 1 when some samples had errors."""
    parser = get_parser(__doc__, DB_VAR)
    parser.add_argument("--input", default=None, help="list file, relative to the corpus root")
    parser.add_argument("--data_type", choices=["raw", "shard"], default=None)
    parser.add_argument("--name", default=None, help="data dir name")
    parser.add_argument("--role", choices=ROLES, default="train")
    args = parse_args(parser, DB_VAR, argv)
    if args.input:
        if not (args.data_type and args.name):
            parser.error("--input needs --data_type and --name")
        lists = [(args.db_root / args.input, args.data_type, args.name, args.role)]
    else:
        lists = discover(args.db_root)
        if not lists:
            raise FileNotFoundError(f"{args.db_root}: no data.list or shards_list.txt found")
    failed = False
    for path, data_type, name, role in lists:
        errors = osum_to_datadir(data_type, path, args.out_dir / name)
        for error in errors:
            print(error, file=sys.stderr)
        failed = failed or bool(errors)
        record_role(args.out_dir, name, role)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
