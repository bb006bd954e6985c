"""Check a speech-LLM data dir; print every issue as ``file:line: utt ID: message``.

Exit status 0 when the dir is valid, 1 otherwise.
"""

import argparse
import sys
from typing import List, Optional

from espnet2_echat.data.datadir import DEFAULT_SPEECH_TOKEN_VOCAB, validate_data_dir


def get_parser() -> argparse.ArgumentParser:
    """Return the argument parser."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", help="Kaldi-style data dir")
    parser.add_argument(
        "--speech_token_vocab",
        type=int,
        default=DEFAULT_SPEECH_TOKEN_VOCAB,
        help="K: speech-token ids must lie in 0..K-1",
    )
    parser.add_argument("--no_audio_check", action="store_true", help="do not open the audio files")
    parser.add_argument("--fs", type=int, default=None, help="required sample rate")
    parser.add_argument(
        "--no_speech_tokens",
        action="store_true",
        help="a corpus before speech-token extraction: speech_token is not required",
    )
    parser.add_argument(
        "--no_targets",
        action="store_true",
        help="a test set without references: reply/think/speech_token are not required",
    )
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Validate and report; return the exit status."""
    args = get_parser().parse_args(argv)
    issues = validate_data_dir(
        args.data_dir,
        speech_token_vocab=args.speech_token_vocab,
        check_audio=not args.no_audio_check,
        expected_fs=args.fs,
        require_speech_tokens=not args.no_speech_tokens,
        require_targets=not args.no_targets,
    )
    for issue in issues:
        print(f"{args.data_dir}/{issue}", file=sys.stderr)
    if issues:
        print(f"{args.data_dir}: {len(issues)} issue(s)", file=sys.stderr)
        return 1
    print(f"{args.data_dir}: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
