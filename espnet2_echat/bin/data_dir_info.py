"""Print what each data dir is for, one line each: ``name stage speech_tokens think tasks``.

``stage`` is the training stage that uses the dir (1, 2 or 3), ``speech_tokens`` yes/no,
``think`` none/tag/language, ``tasks`` the comma-separated ``echat_inference --task``
values that decode it. Read from the dir's ``task``/``think`` files
(:mod:`espnet2_echat.data.set_info`); the recipe uses it instead of dir-name suffixes.
"""

import argparse
import sys
from typing import List, Optional

from espnet2_echat.data.set_info import set_info


def main(argv: Optional[List[str]] = None) -> int:
    """Print one line per data dir; exit 1 naming a dir that cannot be read."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dirs", nargs="*")
    args = parser.parse_args(argv)
    for d in args.data_dirs:
        try:
            print(set_info(d).line())
        except (OSError, ValueError) as e:
            print(f"data_dir_info: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
