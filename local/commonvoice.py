#!/usr/bin/env python3
"""Common Voice -> data dirs (ASR + age + gender, task ``<TRANSCRIBE> <AGE> <GENDER>``).

Layout (a Common Voice release, one language): ``$COMMONVOICE/<lang>/{train,dev,test}.tsv``
(columns ``client_id path sentence ... age gender ...``) and ``$COMMONVOICE/<lang>/clips/*.mp3``
(MP3 is read by soundfile/libsndfile >= 1.1). Only clips with both an age and a gender
are kept. Ages map to the reference's three groups: teens -> <CHILD> (the youngest CV
bucket, 13-19), twenties..fifties -> <ADULT>, sixties and older -> <OLD>. Genders
``male``/``male_masculine`` -> <MALE>, ``female``/``female_feminine`` -> <FEMALE>; other
values are skipped.
"""

import csv
from pathlib import Path

from prep_common import Utts, get_parser, one_line, parse_args, write_and_check

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


def prepare_split(lang_dir: Path, split: str, task: str) -> Utts:
    """Labelled clips of one split tsv."""
    utts: Utts = {}
    with open(lang_dir / f"{split}.tsv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            age, gender = AGES.get(row.get("age", "")), GENDERS.get(row.get("gender", ""))
            if age is None or gender is None:
                continue
            spk = row["client_id"][:16]
            utt = f"{spk}-{Path(row['path']).stem}"
            utts[utt] = {
                "task": task,
                "wav.scp": str((lang_dir / "clips" / row["path"]).resolve()),
                "utt2spk": spk,
                "text": one_line(row["sentence"]),
                "utt2age": age,
                "utt2gender": gender,
            }
    return utts


def main(argv=None) -> None:
    """Command-line entry."""
    parser = get_parser(__doc__, DB_VAR)
    parser.add_argument("--lang", default="en")
    parser.add_argument("--task", default="<TRANSCRIBE> <AGE> <GENDER>")
    args = parse_args(parser, DB_VAR, argv)
    for split in ("train", "dev", "test"):
        utts = prepare_split(args.db_root / args.lang, split, args.task)
        write_and_check(args.out_dir / f"commonvoice_{args.lang}_{split}", utts)


if __name__ == "__main__":
    main()
