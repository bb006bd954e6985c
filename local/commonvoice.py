#!/usr/bin/env python3
"""Common Voice -> data dirs (ASR + age + gender, task ``<TRANSCRIBE> <AGE> <GENDER>``).

Layout (a Common Voice release, ``cv-corpus-<version>-<date>/<lang>/``):
``{train,dev,test}.tsv`` (tab-separated, header ``client_id path [sentence_id] sentence
... age gender ...``; quotes are literal characters, not CSV quoting) and ``clips/*.mp3``
(48 kHz; the format stage resamples). ``$COMMONVOICE`` may be the ``cv-corpus-*`` folder
(``--lang`` picks the language folder), the language folder itself, or the folder the
archive was extracted into. Only clips with both an age and a gender are kept (the others
are counted in a warning). Ages map to the reference's three groups: teens -> <CHILD>
(the youngest CV bucket, 13-19), twenties..fifties -> <ADULT>, sixties and older ->
<OLD>. Genders ``male``/``male_masculine`` -> <MALE>, ``female``/``female_feminine`` ->
<FEMALE>.
"""

import csv
import sys
from pathlib import Path

from prep_common import (
    Utts,
    get_parser,
    one_line,
    parse_args,
    report_skipped,
    role_of_split,
    write_and_check,
)

DB_VAR = "COMMONVOICE"
AGES = {
    "teens": "<CHILD>",
    "twenties": "<ADULT>",
    "thirties": "<ADULT>",
    "fourties": "<ADULT>",
    "forties": "<ADULT>",
    "fifties": "<ADULT>",
    "sixties": "<OLD>",
    "seventies": "<OLD>",
    "eighties": "<OLD>",
    "nineties": "<OLD>",
}
GENDERS = {
    "male": "<MALE>",
    "male_masculine": "<MALE>",
    "female": "<FEMALE>",
    "female_feminine": "<FEMALE>",
}


def find_lang_dir(root: Path, lang: str) -> Path:
    """The folder holding ``train.tsv`` and ``clips/`` for ``lang``."""
    for cand in [root / lang, root] + sorted(root.glob(f"cv-corpus-*/{lang}"), reverse=True):
        if (cand / "clips").is_dir():
            return cand
    raise FileNotFoundError(f"{root}: no Common Voice folder with clips/ for language {lang!r}")


def prepare_split(lang_dir: Path, split: str, task: str) -> Utts:
    """Labelled clips of one split tsv."""
    csv.field_size_limit(sys.maxsize)
    utts: Utts = {}
    unlabelled = 0
    tsv = lang_dir / f"{split}.tsv"
    with open(tsv, encoding="utf-8", newline="") as f:
        for lineno, row in enumerate(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 2):
            if None in row or any(row.get(k) is None for k in ("client_id", "path", "sentence")):
                raise ValueError(f"{tsv}:{lineno}: expected the header's columns, got {row}")
            age, gender = AGES.get(row.get("age") or ""), GENDERS.get(row.get("gender") or "")
            if age is None or gender is None:
                unlabelled += 1
                continue
            clip = lang_dir / "clips" / row["path"]
            if not clip.is_file():
                raise FileNotFoundError(f"{tsv}:{lineno}: no clip {clip}")
            spk = row["client_id"][:16]
            utt = f"{spk}-{Path(row['path']).stem}"
            utts[utt] = {
                "task": task,
                "wav.scp": str(clip.resolve()),
                "utt2spk": spk,
                "text": one_line(row["sentence"]),
                "utt2age": age,
                "utt2gender": gender,
            }
    report_skipped(str(tsv), unlabelled, "no age or gender label")
    return utts


def main(argv=None) -> None:
    """Command-line entry."""
    parser = get_parser(__doc__, DB_VAR)
    parser.add_argument("--lang", default="en")
    parser.add_argument("--task", default="<TRANSCRIBE> <AGE> <GENDER>")
    args = parse_args(parser, DB_VAR, argv)
    lang_dir = find_lang_dir(args.db_root, args.lang)
    for split in ("train", "dev", "test"):
        if not (lang_dir / f"{split}.tsv").is_file():
            continue
        utts = prepare_split(lang_dir, split, args.task)
        name = f"commonvoice_{args.lang}_{split}"
        write_and_check(args.out_dir / name, utts, role_of_split(split))


if __name__ == "__main__":
    main()
