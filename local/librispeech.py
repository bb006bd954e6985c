#!/usr/bin/env python3
"""LibriSpeech -> data dirs (ASR, with speaker gender).

Layout (openslr.org/12, each subset a separate archive that extracts into
``LibriSpeech/``): ``$LIBRISPEECH/<subset>/<spk>/<chapter>/<spk>-<chapter>-<n>.flac`` with
``<spk>-<chapter>.trans.txt`` beside the audio, and ``$LIBRISPEECH/SPEAKERS.TXT``
(``ID | SEX | SUBSET | MINUTES | NAME``). ``$LIBRISPEECH`` may also be the folder holding
``LibriSpeech/``. Every subset on disk is prepared (``--subsets`` picks some) into
``<out_dir>/librispeech_<subset with _>``, e.g. ``data/librispeech_test_other``, task
``<TRANSCRIBE>`` (or ``--task``), ``utt2gender`` from SPEAKERS.TXT; train-* subsets are
training sets, dev-* validation sets, test-* test sets.
"""

from pathlib import Path
from typing import Dict

from prep_common import (
    Utts,
    get_parser,
    parse_args,
    release_root,
    role_of_split,
    subsets_on_disk,
    write_and_check,
)

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
        for lineno, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utt, _, text = line.partition(" ")
            flac = trans.parent / f"{utt}.flac"
            if not flac.is_file():
                raise FileNotFoundError(f"{trans}:{lineno}: {utt}: no audio file {flac}")
            spk = utt.split("-")[0]
            rec = {"task": task, "wav.scp": str(flac.resolve()), "utt2spk": spk, "text": text.strip()}
            if spk in genders:
                rec["utt2gender"] = genders[spk]
            utts[utt] = rec
    return utts


def main(argv=None) -> None:
    """Command-line entry."""
    parser = get_parser(__doc__, DB_VAR)
    parser.add_argument("--subsets", nargs="+", default=None, help="default: every subset on disk")
    parser.add_argument("--task", default="<TRANSCRIBE>")
    args = parse_args(parser, DB_VAR, argv)
    root = release_root(args.db_root, "LibriSpeech")
    subsets = args.subsets or subsets_on_disk(root)
    if not subsets:
        raise RuntimeError(f"{root}: no LibriSpeech subset folder (train-clean-100, ...) found")
    genders = read_speakers(root / "SPEAKERS.TXT")
    for subset in subsets:
        utts = prepare_subset(root / subset, genders, args.task)
        name = "librispeech_" + subset.replace("-", "_")
        write_and_check(args.out_dir / name, utts, role_of_split(subset))


if __name__ == "__main__":
    main()
