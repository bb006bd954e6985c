#!/usr/bin/env python3
"""EChat-1500H / EChat-eval -> data dirs.

The reference README releases OSUM-EChat data in its own formats: raw JSONL
(``data.list``), shards (``shards_list.txt`` of WeNet-style tars) or the combine type
(``combines_list.txt`` + ``combines_tar_root.txt``), see spec 4.1-4.4. This script
converts one such list under ``$ECHAT`` with :func:`osum_to_datadir`; samples with
problems are reported (file and line, or tar and member) and left out.

Example: ``python local/echat.py --input EChat-1500H/shards_list.txt --data_type shard
--name echat1500h_train --out_dir data``.
"""

import sys

from prep_common import get_parser, parse_args

from espnet2_echat.data.osum_format import osum_to_datadir

DB_VAR = "ECHAT"


def main(argv=None) -> int:
    """Command-line entry; exit status 1 when some samples had errors."""
    parser = get_parser(__doc__, DB_VAR)
    parser.add_argument("--input", required=True, help="list file, relative to the corpus root")
    parser.add_argument("--data_type", choices=["raw", "shard"], required=True)
    parser.add_argument("--name", required=True, help="data dir name")
    args = parse_args(parser, DB_VAR, argv)
    errors = osum_to_datadir(args.data_type, args.db_root / args.input, args.out_dir / args.name)
    for error in errors:
        print(error, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
