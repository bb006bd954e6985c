#!/usr/bin/env python3
"""LibriTTS / LibriTTS-R -> data dirs (TTS, task ``<TEXT2TOKEN>``).

Layout (openslr.org/60 and /141): ``$LIBRITTS/<subset>/<spk>/<chapter>/<utt>.wav`` with
``<utt>.normalized.txt`` beside each wav (24 kHz; resampled to 16 kHz before speech-token
extraction). ``text`` is the normalised text, the text the TTS task speaks. Speech tokens
come later from ``extract_speech_tokens`` (they are the wav's own tokens).
"""

from pathlib import Path

from prep_common import Utts, get_parser, one_line, parse_args, write_and_check

DB_VAR = "LIBRITTS"


def prepare_subset(subset_dir: Path) -> Utts:
    """All utterances with a normalised text."""
    utts: Utts = {}
    for txt in sorted(subset_dir.glob("*/*/*.normalized.txt")):
        utt = txt.name[: -len(".normalized.txt")]
        wav = txt.with_name(f"{utt}.wav")
        if not wav.is_file():
            continue
        utts[utt] = {
            "task": "<TEXT2TOKEN>",
            "wav.scp": str(wav.resolve()),
            "utt2spk": utt.split("_")[0],
            "text": one_line(txt.read_text(encoding="utf-8")),
        }
    return utts


def main(argv=None) -> None:
    """Command-line entry."""
    parser = get_parser(__doc__, DB_VAR)
    parser.add_argument(
        "--subsets", nargs="+", default=["train-clean-100", "dev-clean", "test-clean"]
    )
    args = parse_args(parser, DB_VAR, argv)
    for subset in args.subsets:
        utts = prepare_subset(args.db_root / subset)
        write_and_check(args.out_dir / f"libritts_{subset.replace('-', '_')}", utts)


if __name__ == "__main__":
    main()
