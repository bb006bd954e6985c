"""Train the STAND-IN speech tokenizer (k-means on 25 Hz log-mel frames).

A stand-in for CosyVoice's S3 tokenizer when its weights are not available: it learns
K acoustic clusters from the speech-output audio (reply / TTS audio) of data dirs.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from espnet2_echat.data.speech_tokenizer import train_standin_tokenizer


def get_parser() -> argparse.ArgumentParser:
    """Return the argument parser."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data_dir", type=Path, nargs="+", required=True)
    parser.add_argument("--out_file", type=Path, required=True, help="output .npz")
    parser.add_argument("--vocab_size", type=int, default=256, help="K")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max_utts", type=int, default=None)
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Train and save."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = get_parser().parse_args(argv)
    train_standin_tokenizer(args.data_dir, args.out_file, args.vocab_size, args.seed, args.max_utts)


if __name__ == "__main__":
    main(sys.argv[1:])
