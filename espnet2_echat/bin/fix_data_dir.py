"""Drop the bad utterances of a speech-LLM data dir in place (like ``fix_data_dir.sh``).

Originals are kept in ``DIR/.backup/``; every dropped utterance is printed with the issue
that caused it.
"""

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional

from espnet2_echat.data.datadir import DEFAULT_SPEECH_TOKEN_VOCAB, DataDirError, fix_data_dir


def get_parser() -> argparse.ArgumentParser:
    """Return the argument parser."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dirs", nargs="+", help="Kaldi-style data dirs, rewritten in place")
    parser.add_argument("--speech_token_vocab", type=int, default=DEFAULT_SPEECH_TOKEN_VOCAB)
    parser.add_argument("--no_audio_check", action="store_true")
    parser.add_argument("--fs", type=int, default=None, help="required sample rate")
    parser.add_argument(
        "--no_speech_tokens",
        action="store_true",
        help="a corpus before speech-token extraction: speech_token is not required",
    )
    parser.add_argument(
        "--no_targets",
        action="store_true",
        help="a test set: utterances without a reference reply/CoT/speech tokens are kept",
    )
    parser.add_argument(
        "--append_dropped",
        action="store_true",
        help="append one 'uttid reason' line per dropped utterance to DIR/dropped",
    )
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Fix each dir; return 0 (1 if one cannot be fixed by dropping utterances)."""
    args = get_parser().parse_args(argv)
    status = 0
    for data_dir in args.data_dirs:
        try:
            dropped, issues = fix_data_dir(
                data_dir,
                speech_token_vocab=args.speech_token_vocab,
                check_audio=not args.no_audio_check,
                expected_fs=args.fs,
                require_speech_tokens=not args.no_speech_tokens,
                require_targets=not args.no_targets,
            )
        except DataDirError as e:
            print(f"{data_dir}: cannot be fixed by dropping utterances:\n{e}", file=sys.stderr)
            status = 1
            continue
        for issue in issues:
            print(f"{data_dir}/{issue}", file=sys.stderr)
        if args.append_dropped:
            reasons: Dict[str, str] = {}
            for issue in issues:
                if issue.utt in dropped and issue.utt not in reasons:
                    reasons[issue.utt] = f"{issue.file}: {issue.message}"
            with open(Path(data_dir) / "dropped", "a", encoding="utf-8") as f:
                for utt in dropped:
                    f.write(f"{utt} {' '.join(reasons.get(utt, 'invalid').split())}\n")
        print(f"{data_dir}: dropped {len(dropped)} utterance(s)")
    return status


if __name__ == "__main__":
    sys.exit(main())
