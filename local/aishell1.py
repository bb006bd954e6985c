#!/usr/bin/env python3
"""AISHELL-1 -> data dirs (Mandarin ASR).

Layout (openslr.org/33): ``$AISHELL/data_aishell/wav/{train,dev,test}/<spk>/<utt>.wav``
and ``$AISHELL/data_aishell/transcript/aishell_transcript_v0.8.txt`` (``<utt> <words>``,
words separated by spaces). Writes ``<out_dir>/aishell_{train,dev,test}``; the spaces
between Chinese words are removed (the reference's normalisation would remove them too,
spec 2.7). Utterances without a transcript are skipped, as in Kaldi's recipe.
"""

from pathlib import Path
from typing import Dict

from prep_common import Utts, get_parser, parse_args, write_and_check

DB_VAR = "AISHELL"
TRANSCRIPT = Path("data_aishell/transcript/aishell_transcript_v0.8.txt")


def read_transcripts(path: Path) -> Dict[str, str]:
    """Utterance id -> text with the word spaces removed."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) > 1:
            out[parts[0]] = "".join(parts[1:])
    return out


def prepare_split(wav_dir: Path, transcripts: Dict[str, str]) -> Utts:
    """All transcribed utterances of one split folder."""
    utts: Utts = {}
    for wav in sorted(wav_dir.glob("*/*.wav")):
        if wav.stem not in transcripts:
            continue
        utts[wav.stem] = {
            "task": "<TRANSCRIBE>",
            "wav.scp": str(wav.resolve()),
            "utt2spk": wav.parent.name,
            "text": transcripts[wav.stem],
        }
    return utts


def main(argv=None) -> None:
    """Command-line entry."""
    parser = get_parser(__doc__, DB_VAR)
    args = parse_args(parser, DB_VAR, argv)
    transcripts = read_transcripts(args.db_root / TRANSCRIPT)
    for split in ("train", "dev", "test"):
        utts = prepare_split(args.db_root / "data_aishell" / "wav" / split, transcripts)
        write_and_check(args.out_dir / f"aishell_{split}", utts)


if __name__ == "__main__":
    main()
