"""Write the ``speech_token`` file of data dirs (S2S reply audio, TTS audio).

``--tokenizer s3`` uses CosyVoice's S3 tokenizer (optional package ``s3tokenizer`` and a
local ``speech_tokenizer_v1.onnx``); ``--tokenizer standin`` uses the STAND-IN k-means
tokenizer trained by ``train_standin_speech_tokenizer``.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional

from espnet2_echat.data.speech_tokenizer import extract_speech_tokens, load_speech_tokenizer
from espnet2_echat.inference.threads import add_nthreads_argument, set_nthreads
from espnet2_echat.progress import Tally
from espnet2_echat.safety.atomic import atomic_write_text


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
    add_nthreads_argument(parser)
    parser.add_argument("--log_level", default="INFO", help="WARNING: no progress bar")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Tokenise every given data dir; 1 when an utterance failed (each dir lists its own
    in ``speech_token_errors``; every other utterance gets its tokens)."""
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    set_nthreads(args.nthreads)
    tokenizer = load_speech_tokenizer(args.tokenizer, args.model_file, args.s3_name)
    failed, tally = 0, Tally()
    for data_dir in args.data_dir:
        errors: Dict[str, str] = {}
        extract_speech_tokens(data_dir, tokenizer, errors=errors, tally=tally)
        atomic_write_text(
            data_dir / "speech_token_errors",
            "".join(f"{u} {' '.join(r.split())}\n" for u, r in sorted(errors.items())),
        )
        for utt, reason in sorted(errors.items()):
            logging.error(reason)
        failed += len(errors)
    print(tally.summary("extract_speech_tokens"), file=sys.stderr)
    if failed:
        print(f"extract_speech_tokens: {failed} utterance(s) got no tokens; see "
              "speech_token_errors in each data dir", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
