#!/usr/bin/env python3
"""MELD -> data dirs (speech emotion recognition, ASR+emotion).

Layout (``MELD.Raw.tar.gz`` extracted, then its ``train.tar.gz``, ``dev.tar.gz`` and
``test.tar.gz`` in place): ``$MELD/{train,dev,test}_sent_emo.csv`` (comma-separated with
quoting; columns include ``Utterance, Speaker, Emotion, Dialogue_ID, Utterance_ID``) and
the clips ``$MELD/train_splits/dia<D>_utt<U>.mp4``, ``$MELD/dev_splits_complete/...``,
``$MELD/output_repeated_splits_test/...``. ``$MELD`` may also be the folder holding
``MELD.Raw/``. Rows whose clip is missing (the release lacks a few) are counted in a
warning.

The clips are MP4 video. By default ``wav.scp`` holds an ``ffmpeg`` pipe (16 kHz mono)
that the format stage (stage 2) runs; with ``--audio_ext wav`` (or flac) it points at
audio already extracted next to the clips under the same names. MELD's seven emotions
map to the reference's set: joy -> <HAPPY>, anger -> <ANGRY>, sadness -> <SAD>, surprise,
fear, disgust, neutral -> themselves.
"""

import csv
import io
import logging
import shlex
from pathlib import Path

from prep_common import (
    Utts,
    get_parser,
    one_line,
    parse_args,
    release_root,
    report_skipped,
    role_of_split,
    write_and_check,
)

DB_VAR = "MELD"
SPLITS = {
    "train": ("train_sent_emo.csv", "train_splits"),
    "dev": ("dev_sent_emo.csv", "dev_splits_complete"),
    "test": ("test_sent_emo.csv", "output_repeated_splits_test"),
}
EMOTIONS = {
    "joy": "<HAPPY>",
    "anger": "<ANGRY>",
    "sadness": "<SAD>",
    "surprise": "<SURPRISE>",
    "fear": "<FEAR>",
    "disgust": "<DISGUST>",
    "neutral": "<NEUTRAL>",
}


def read_csv_text(path: Path) -> str:
    """The csv's text: UTF-8, or cp1252 (some MELD releases) with a warning."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        logging.warning("%s is not UTF-8; reading it as cp1252", path)
        return raw.decode("cp1252", errors="replace")


def ffmpeg_pipe(clip: Path) -> str:
    """A wav.scp pipe that decodes a clip's audio track to 16 kHz mono wav."""
    return f"ffmpeg -nostdin -loglevel error -i {shlex.quote(str(clip))} -ac 1 -ar 16000 -f wav - |"


def prepare_split(root: Path, split: str, task: str, audio_ext: str) -> Utts:
    """All clips of one split that exist on disk."""
    csv_name, clip_dir = SPLITS[split]
    utts: Utts = {}
    missing = 0
    rows = csv.DictReader(io.StringIO(read_csv_text(root / csv_name), newline=""))
    for lineno, row in enumerate(rows, 2):
        emotion = EMOTIONS.get((row.get("Emotion") or "").strip().lower())
        if emotion is None or not row.get("Dialogue_ID") or not row.get("Utterance_ID"):
            raise ValueError(f"{root / csv_name}:{lineno}: bad row {row}")
        stem = f"dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}"
        clip = root / clip_dir / f"{stem}.{audio_ext}"
        if not clip.is_file():
            missing += 1
            continue
        spk = "".join(ch for ch in row["Speaker"] if ch.isalnum()) or "unknown"
        utt = f"{spk}-meld_{split}_{stem}"
        wav = ffmpeg_pipe(clip.resolve()) if audio_ext == "mp4" else str(clip.resolve())
        utts[utt] = {
            "task": task,
            "wav.scp": wav,
            "utt2spk": spk,
            "text": one_line(row["Utterance"]),
            "utt2emotion": emotion,
        }
    report_skipped(f"{root / csv_name}", missing, f"no clip under {clip_dir}/")
    return utts


def main(argv=None) -> None:
    """Command-line entry."""
    parser = get_parser(__doc__, DB_VAR)
    parser.add_argument(
        "--task", default="<TRANSCRIBE> <EMOTION>", choices=["<TRANSCRIBE> <EMOTION>", "<EMOTION>"]
    )
    parser.add_argument("--audio_ext", default="mp4", choices=["mp4", "wav", "flac"])
    args = parse_args(parser, DB_VAR, argv)
    root = release_root(args.db_root, "MELD.Raw")
    for split in SPLITS:
        utts = prepare_split(root, split, args.task, args.audio_ext)
        write_and_check(args.out_dir / f"meld_{split}", utts, role_of_split(split))


if __name__ == "__main__":
    main()
