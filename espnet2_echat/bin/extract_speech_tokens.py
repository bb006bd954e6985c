"""Write the ``speech_token`` file of data dirs (S2S reply audio, TTS audio).

``--tokenizer s3`` uses CosyVoice's S3 tokenizer (optional package ``s3tokenizer`` and a
local ``speech_tokenizer_v1.onnx``); ``--tokenizer standin`` uses the STAND-IN k-means
tokenizer trained by ``train_standin_speech_tokenizer``.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from espnet2_echat.data.speech_tokenizer import extract_speech_tokens, load_speech_tokenizer


def get_parser() -> argparse.ArgumentParser:
    """Return the argument parser."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data_dir", type=Path, nargs="+", required=True)
    parser.add_argument("--tokenizer", choices=["standin", "s3"], required=True)
    parser.add_argument(
        "--model_file", type=Path, required=True, help="stand-in .npz or S3 ONNX file"
    )
    parser.add_argument(
        "--s3_name",
        default="speech_tokenizer_v1_25hz",
        help="s3tokenizer architecture name (OSUM-EChat: speech_tokenizer_v1_25hz)",
    )
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Tokenise every given data dir."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = get_parser().parse_args(argv)
    tokenizer = load_speech_tokenizer(args.tokenizer, args.model_file, args.s3_name)
    for data_dir in args.data_dir:
        extract_speech_tokens(data_dir, tokenizer)


if __name__ == "__main__":
    main(sys.argv[1:])
