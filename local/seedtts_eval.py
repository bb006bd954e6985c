#!/usr/bin/env python3
"""Seed-TTS-eval -> TTS test data dirs (task ``<TEXT2TOKEN>``).

Layout (BytedanceSpeech/seed-tts-eval test set): ``$SEEDTTS/{en,zh}/meta.lst`` and
``$SEEDTTS/zh/hardcase.lst`` with lines ``utt|prompt_text|prompt_wav|target_text``
(paths relative to the language folder), prompt audio under ``prompt-wavs/`` and, when
shipped, the ground-truth audio ``wavs/<utt>.wav``. Writes ``seedtts_en``,
``seedtts_zh`` and ``seedtts_zh_hard``: ``text`` = the text to synthesise, ``wav.scp`` =
the ground truth when present, plus ``prompt_wav.scp`` and ``prompt_text`` (the voice
prompt, for zero-shot token2wav).
"""

from pathlib import Path

from prep_common import Utts, get_parser, one_line, parse_args, write_and_check

DB_VAR = "SEEDTTS"
LISTS = {
    "seedtts_en": "en/meta.lst",
    "seedtts_zh": "zh/meta.lst",
    "seedtts_zh_hard": "zh/hardcase.lst",
}


def prepare_list(list_path: Path) -> Utts:
    """All lines of one meta list."""
    base = list_path.parent
    utts: Utts = {}
    for lineno, line in enumerate(list_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 4:
            raise ValueError(f"{list_path}:{lineno}: expected utt|prompt_text|prompt_wav|text")
        utt, prompt_text, prompt_wav, text = fields[:4]
        utt = utt.strip().replace(" ", "_")
        rec = {
            "task": "<TEXT2TOKEN>",
            "text": one_line(text),
            "prompt_text": one_line(prompt_text),
            "prompt_wav.scp": str((base / prompt_wav.strip()).resolve()),
        }
        truth = base / "wavs" / f"{utt}.wav"
        if truth.is_file():
            rec["wav.scp"] = str(truth.resolve())
            rec["utt2spk"] = utt
        utts[utt] = rec
    return utts


def main(argv=None) -> None:
    """Command-line entry."""
    parser = get_parser(__doc__, DB_VAR)
    args = parse_args(parser, DB_VAR, argv)
    for name, rel in LISTS.items():
        if (args.db_root / rel).is_file():
            write_and_check(args.out_dir / name, prepare_list(args.db_root / rel))


if __name__ == "__main__":
    main()
