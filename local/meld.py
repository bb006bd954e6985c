#!/usr/bin/env python3
"""MELD -> data dirs (speech emotion recognition, ASR+emotion).

Layout (MELD.Raw.tar.gz): ``$MELD/{train,dev,test}_sent_emo.csv`` (columns include
``Utterance, Speaker, Emotion, Dialogue_ID, Utterance_ID``) and the clips
``$MELD/train_splits/dia<D>_utt<U>.mp4``, ``$MELD/dev_splits_complete/...``,
``$MELD/output_repeated_splits_test/...``.

The clips are MP4 video. By default ``wav.scp`` holds an ``ffmpeg`` pipe (16 kHz mono),
which ESPnet's ``format_wav_scp.sh`` runs later; with ``--audio_ext wav`` (or flac) it
points at audio already extracted next to the clips under the same names. MELD's seven
emotions map to the reference's set: joy -> <HAPPY>, anger -> <ANGRY>, sadness -> <SAD>,
surprise, fear, disgust, neutral -> themselves.
"""

import csv
from pathlib import Path

from prep_common import Utts, get_parser, one_line, parse_args, write_and_check

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


def prepare_split(root: Path, split: str, task: str, audio_ext: str) -> Utts:
    """All clips of one split that exist on disk."""
    csv_name, clip_dir = SPLITS[split]
    utts: Utts = {}
    with open(root / csv_name, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            stem = f"dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}"
            clip = root / clip_dir / f"{stem}.{audio_ext}"
            if not clip.is_file():
                continue
            spk = "".join(ch for ch in row["Speaker"] if ch.isalnum()) or "unknown"
            utt = f"{spk}-meld_{split}_{stem}"
            if audio_ext == "mp4":
                wav = f"ffmpeg -nostdin -loglevel error -i {clip.resolve()} -ac 1 -ar 16000 -f wav - |"
            else:
                wav = str(clip.resolve())
            utts[utt] = {
                "task": task,
                "wav.scp": wav,
                "utt2spk": spk,
                "text": one_line(row["Utterance"]),
                "utt2emotion": EMOTIONS[row["Emotion"].strip().lower()],
            }
    return utts


def main(argv=None) -> None:
    """Command-line entry."""
    parser = get_parser(__doc__, DB_VAR)
    parser.add_argument(
        "--task", default="<TRANSCRIBE> <EMOTION>", choices=["<TRANSCRIBE> <EMOTION>", "<EMOTION>"]
    )
    parser.add_argument("--audio_ext", default="mp4", choices=["mp4", "wav", "flac"])
    args = parse_args(parser, DB_VAR, argv)
    for split in SPLITS:
        utts = prepare_split(args.db_root, split, args.task, args.audio_ext)
        write_and_check(args.out_dir / f"meld_{split}", utts)


if __name__ == "__main__":
    main()
