#!/usr/bin/env python3
"""LibriSpeech -> data dirs (ASR, with speaker gender).

Layout (openslr.org/12): ``$LIBRISPEECH/<subset>/<spk>/<chapter>/<spk>-<chapter>-<n>.flac``
with ``<spk>-<chapter>.trans.txt`` beside the audio, and ``$LIBRISPEECH/SPEAKERS.TXT``
(``ID | SEX | SUBSET | MINUTES | NAME``). Writes ``<out_dir>/<subset with _>``, e.g.
``data/train_clean_100``, task ``<TRANSCRIBE>`` (or ``--task``), ``utt2gender`` from
SPEAKERS.TXT.
"""

from pathlib import Path
from typing import Dict

from prep_common import Utts, get_parser, parse_args, write_and_check

DB_VAR = "LIBRISPEECH"
SEX = {"M": "<MALE>", "F": "<FEMALE>"}


def read_speakers(path: Path) -> Dict[str, str]:
    """Speaker id -> gender tag from SPEAKERS.TXT (empty if the file is absent)."""
    genders: Dict[str, str] = {}
    if not path.is_file():
        return genders
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(";") or "|" not in line:
            continue
        fields = [f.strip() for f in line.split("|")]
        if fields[1] in SEX:
            genders[fields[0]] = SEX[fields[1]]
    return genders


def prepare_subset(subset_dir: Path, genders: Dict[str, str], task: str) -> Utts:
    """All utterances of one subset folder."""
    utts: Utts = {}
    for trans in sorted(subset_dir.glob("*/*/*.trans.txt")):
        for line in trans.read_text(encoding="utf-8").splitlines():
            utt, text = line.split(" ", 1)
            spk = utt.split("-")[0]
            rec = {
                "task": task,
                "wav.scp": str((trans.parent / f"{utt}.flac").resolve()),
                "utt2spk": spk,
                "text": text.strip(),
            }
            if spk in genders:
                rec["utt2gender"] = genders[spk]
            utts[utt] = rec
    return utts


def main(argv=None) -> None:
    """Command-line entry."""
    parser = get_parser(__doc__, DB_VAR)
    parser.add_argument(
        "--subsets", nargs="+", default=["train-clean-100", "dev-clean", "test-clean"]
    )
    parser.add_argument("--task", default="<TRANSCRIBE>")
    args = parse_args(parser, DB_VAR, argv)
    genders = read_speakers(args.db_root / "SPEAKERS.TXT")
    for subset in args.subsets:
        utts = prepare_subset(args.db_root / subset, genders, args.task)
        write_and_check(args.out_dir / subset.replace("-", "_"), utts)


if __name__ == "__main__":
    main()
