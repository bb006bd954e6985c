#!/usr/bin/env python3
"""Seed-TTS-eval -> TTS test data dirs (task ``<TEXT2TOKEN>``).

Layout (BytedanceSpeech/seed-tts-eval test set, ``seedtts_testset/``):
``$SEEDTTS_EVAL/{en,zh}/meta.lst`` and ``$SEEDTTS_EVAL/zh/hardcase.lst`` with lines
``utt|prompt_text|prompt_wav|target_text[|target_wav]`` (paths relative to the language
folder), prompt audio under ``prompt-wavs/`` and, when shipped, the ground-truth audio
(the fifth field, or ``wavs/<utt>.wav``). ``$SEEDTTS_EVAL`` may also be the folder
holding ``seedtts_testset/``. Writes ``seedtts_en``,
``seedtts_zh`` and ``seedtts_zh_hard``: ``text`` = the text to synthesise, ``wav.scp`` =
the ground truth when present, plus ``prompt_wav.scp`` and ``prompt_text`` (the voice
prompt, for zero-shot token2wav).
"""

from pathlib import Path

from prep_common import Utts, get_parser, one_line, parse_args, release_root, write_and_check

DB_VAR = "SEEDTTS_EVAL"
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
        prompt = base / prompt_wav.strip()
        if not prompt.is_file():
            raise FileNotFoundError(f"{list_path}:{lineno}: no prompt audio {prompt}")
        rec = {
            "task": "<TEXT2TOKEN>",
            "text": one_line(text),
            "prompt_text": one_line(prompt_text),
            "prompt_wav.scp": str(prompt.resolve()),
        }
        truth = base / "wavs" / f"{utt}.wav"
        if len(fields) > 4 and fields[4].strip():
            truth = base / fields[4].strip()
        if truth.is_file():
            rec["wav.scp"] = str(truth.resolve())
            rec["utt2spk"] = utt
        utts[utt] = rec
    return utts


def main(argv=None) -> None:
    """Command-line entry."""
    parser = get_parser(__doc__, DB_VAR)
    args = parse_args(parser, DB_VAR, argv)
    root = release_root(args.db_root, "seedtts_testset")
    lists = {name: root / rel for name, rel in LISTS.items() if (root / rel).is_file()}
    if not lists:
        raise FileNotFoundError(f"{root}: none of {', '.join(LISTS.values())}")
    for name, path in lists.items():
        write_and_check(args.out_dir / name, prepare_list(path), "test")


if __name__ == "__main__":
    main()
