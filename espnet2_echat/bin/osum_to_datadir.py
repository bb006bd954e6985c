"""Convert OSUM-EChat data (raw JSONL, or shard / combine tar lists) into a data dir.

Every convertible sample is written; each problem (bad JSON line, unknown label,
corrupt or truncated tar member) is printed naming the file and line, or the tar and
member, listed in ``OUT_DIR/conversion_errors``, and makes the exit status 1. The data
dir's files are replaced only when complete: a killed conversion leaves the previous ones.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from espnet2_echat.data.osum_format import osum_to_datadir
from espnet2_echat.progress import Tally
from espnet2_echat.safety.atomic import atomic_write_text

ERROR_LIST = "conversion_errors"  # one problem a line, beside the data dir's files


def get_parser() -> argparse.ArgumentParser:
    """Return the argument parser."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data_type",
        choices=["raw", "shard"],
        required=True,
        help="raw: JSONL list; shard: shards_list.txt, combines_list.txt "
        "or a 'JSONL|TAR' / '-|TAR' manifest",
    )
    parser.add_argument("--input", type=Path, required=True, help="the list file")
    parser.add_argument("--out_dir", type=Path, required=True)
    parser.add_argument(
        "--wav_root",
        type=Path,
        default=None,
        help="folder that relative raw wav paths start from " "(default: the list's folder)",
    )
    parser.add_argument("--log_level", default="INFO", help="WARNING: no progress bar")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Convert; return 1 if any sample had an error."""
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    tally = Tally()
    errors = osum_to_datadir(args.data_type, args.input, args.out_dir, args.wav_root, tally)
    for error in errors:
        print(error, file=sys.stderr)
    error_list = args.out_dir / ERROR_LIST
    atomic_write_text(error_list, "".join(f"{' '.join(e.split())}\n" for e in errors))
    print(tally.summary("osum_to_datadir"), file=sys.stderr)
    if errors:
        print(f"osum_to_datadir: {len(errors)} problem(s); every good sample was written "
              f"to {args.out_dir}; see {error_list}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
