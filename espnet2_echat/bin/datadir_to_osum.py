"""Write data dirs in OSUM-EChat's raw (JSONL), shard (tar) or combine format.

Prints the list file to give OSUM's training tools (``data.list``, ``shards_list.txt``
or ``combines_list.txt``). An utterance that cannot be converted (labels, unreadable audio)
is left out and printed, and makes the exit status 1; the others are written.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from espnet2_echat.data.osum_format import UTTS_PER_SHARD, datadir_to_osum
from espnet2_echat.progress import Tally


def get_parser() -> argparse.ArgumentParser:
    """Return the argument parser."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data_dir", type=Path, nargs="+", required=True)
    parser.add_argument("--data_type", choices=["raw", "shard", "combine"], required=True)
    parser.add_argument("--out_dir", type=Path, required=True)
    parser.add_argument("--utts_per_shard", type=int, default=UTTS_PER_SHARD)
    parser.add_argument("--log_level", default="INFO", help="WARNING: no progress bar")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Convert and print the list file; 1 when an utterance could not be converted."""
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    errors: List[str] = []
    tally = Tally()
    path = datadir_to_osum(
        args.data_dir, args.data_type, args.out_dir, args.utts_per_shard, errors, tally
    )
    print(path)
    for error in errors:
        print(error, file=sys.stderr)
    print(tally.summary("datadir_to_osum"), file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
