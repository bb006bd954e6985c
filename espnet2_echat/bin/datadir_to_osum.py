"""Write data dirs in OSUM-EChat's raw (JSONL), shard (tar) or combine format.

Prints the list file to give OSUM's training tools (``data.list``, ``shards_list.txt``
or ``combines_list.txt``).
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from espnet2_echat.data.osum_format import UTTS_PER_SHARD, datadir_to_osum


def get_parser() -> argparse.ArgumentParser:
    """Return the argument parser."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data_dir", type=Path, nargs="+", required=True)
    parser.add_argument("--data_type", choices=["raw", "shard", "combine"], required=True)
    parser.add_argument("--out_dir", type=Path, required=True)
    parser.add_argument("--utts_per_shard", type=int, default=UTTS_PER_SHARD)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Convert and print the list file."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = get_parser().parse_args(argv)
    print(datadir_to_osum(args.data_dir, args.data_type, args.out_dir, args.utts_per_shard))
    return 0


if __name__ == "__main__":
    sys.exit(main())
