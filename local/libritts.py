#!/usr/bin/env python3
"""LibriTTS / LibriTTS-R -> data dirs (TTS, task ``<TEXT2TOKEN>``).

Layout (openslr.org/60 and /141, each subset a separate archive that extracts into
``LibriTTS/`` or ``LibriTTS_R/``): ``$LIBRITTS/<subset>/<spk>/<chapter>/<utt>.wav`` with
``<utt>.normalized.txt`` beside each wav, 24 kHz (the format stage resamples to 16 kHz).
``$LIBRITTS`` may also be the folder holding ``LibriTTS/`` or ``LibriTTS_R/``. Every subset
on disk is prepared (``--subsets`` picks some) into ``libritts_<subset with _>``. ``text``
is the normalised text, the text the TTS task speaks; speech tokens come later from
``extract_speech_tokens`` (they are the wav's own tokens).
"""

from pathlib import Path

from prep_common import (
    Utts,
    get_parser,
    one_line,
    parse_args,
    release_root,
    report_skipped,
    role_of_split,
    subsets_on_disk,
    write_and_check,
)

DB_VAR = "LIBRITTS"


def prepare_subset(subset_dir: Path) -> Utts:
    """All utterances with a normalised text (wavs without one are counted and left out)."""
    utts: Utts = {}
    for txt in sorted(subset_dir.glob("*/*/*.normalized.txt")):
        utt = txt.name[: -len(".normalized.txt")]
        wav = txt.with_name(f"{utt}.wav")
        if not wav.is_file():
            raise FileNotFoundError(f"{txt}: no audio file {wav}")
        utts[utt] = {
            "task": "<TEXT2TOKEN>",
            "wav.scp": str(wav.resolve()),
            "utt2spk": utt.split("_")[0],
            "text": one_line(txt.read_text(encoding="utf-8")),
        }
    untranscribed = sum(1 for w in subset_dir.glob("*/*/*.wav") if w.stem not in utts)
    report_skipped(str(subset_dir), untranscribed, "wav without a .normalized.txt")
    return utts


def main(argv=None) -> None:
    """Command-line entry."""
    parser = get_parser(__doc__, DB_VAR)
    parser.add_argument("--subsets", nargs="+", default=None, help="default: every subset on disk")
    args = parse_args(parser, DB_VAR, argv)
    root = release_root(args.db_root, "LibriTTS_R", "LibriTTS")
    subsets = args.subsets or subsets_on_disk(root)
    if not subsets:
        raise RuntimeError(f"{root}: no LibriTTS subset folder (train-clean-100, ...) found")
    for subset in subsets:
        utts = prepare_subset(root / subset)
        name = "libritts_" + subset.replace("-", "_")
        write_and_check(args.out_dir / name, utts, role_of_split(subset))


if __name__ == "__main__":
    main()
