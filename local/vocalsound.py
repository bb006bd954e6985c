#!/usr/bin/env python3
"""VocalSound -> data dirs (vocal sound events, task ``<CAPTION>``).

Layout (VocalSound 16 kHz release, ``vs_release_16k.zip`` extracted):
``$VOCALSOUND/audio_16k/<spk>_<n>_<label>.wav``, e.g.
``f0003_0_cough.wav``, where ``<spk>`` starts with ``f`` or ``m`` (speaker sex), and the
speaker splits ``$VOCALSOUND/meta/{tr,val,te}_meta.csv`` (speaker id in the first
column). Labels map to the event set: laughter -> <LAUGHTER>, sigh -> <SIGH>, cough ->
<COUGH>, throatclearing -> <THROAT_CLEARING>, sneeze -> <SNEEZE>, sniff -> <OTHER>.
Without the meta folder every file goes to ``vocalsound_all`` (a training set). Files of
speakers in no split are counted in a warning.
"""

import csv
from pathlib import Path
from typing import Dict, Optional, Set

from prep_common import Utts, get_parser, parse_args, report_skipped, role_of_split, write_and_check

DB_VAR = "VOCALSOUND"
EVENTS = {
    "laughter": "<LAUGHTER>",
    "sigh": "<SIGH>",
    "cough": "<COUGH>",
    "throatclearing": "<THROAT_CLEARING>",
    "sneeze": "<SNEEZE>",
    "sniff": "<OTHER>",
}
SEX = {"f": "<FEMALE>", "m": "<MALE>"}
SPLITS = {"train": "tr_meta.csv", "dev": "val_meta.csv", "test": "te_meta.csv"}
AUDIO_DIRS = ("audio_16k", "audio_44k")


def read_speakers(path: Path) -> Set[str]:
    """Speaker ids listed in a split's meta csv."""
    with open(path, encoding="utf-8", newline="") as f:
        return {row[0].strip() for row in csv.reader(f) if row and row[0].strip()}


def prepare(audio_dir: Path, speakers: Optional[Set[str]] = None) -> Utts:
    """All files of the given speakers (all files when ``speakers`` is None)."""
    utts: Utts = {}
    for wav in sorted(audio_dir.glob("*.wav")):
        parts = wav.stem.split("_")
        if len(parts) < 3 or parts[-1].lower() not in EVENTS:
            raise ValueError(f"{wav}: expected <spk>_<n>_<label>.wav with a VocalSound label")
        spk = parts[0]
        if speakers is not None and spk not in speakers:
            continue
        rec: Dict[str, str] = {
            "task": "<CAPTION>",
            "wav.scp": str(wav.resolve()),
            "utt2spk": spk,
            "utt2event": EVENTS[parts[-1].lower()],
        }
        if spk[:1].lower() in SEX:
            rec["utt2gender"] = SEX[spk[:1].lower()]
        utts[wav.stem] = rec
    return utts


def main(argv=None) -> None:
    """Command-line entry."""
    parser = get_parser(__doc__, DB_VAR)
    args = parse_args(parser, DB_VAR, argv)
    root = args.db_root
    if not any((root / d).is_dir() for d in AUDIO_DIRS):  # the folder holding the release
        root = next((p for p in sorted(root.iterdir()) if (p / "audio_16k").is_dir()), root)
    audio_dir = next((root / d for d in AUDIO_DIRS if (root / d).is_dir()), None)
    if audio_dir is None:
        raise FileNotFoundError(f"{args.db_root}: no audio_16k/ folder (VocalSound release)")
    meta = root / "meta"
    if not meta.is_dir():
        write_and_check(args.out_dir / "vocalsound_all", prepare(audio_dir), "train")
        return
    placed = 0
    for split, name in SPLITS.items():
        utts = prepare(audio_dir, read_speakers(meta / name))
        placed += len(utts)
        write_and_check(args.out_dir / f"vocalsound_{split}", utts, role_of_split(split))
    report_skipped(str(audio_dir), len(list(audio_dir.glob("*.wav"))) - placed,
                   "speaker in none of meta/{tr,val,te}_meta.csv")


if __name__ == "__main__":
    main()
