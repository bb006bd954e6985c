#!/usr/bin/env python3
"""AISHELL-1 -> data dirs (Mandarin ASR).

Layout (openslr.org/33): ``$AISHELL/data_aishell/wav/{train,dev,test}/<spk>/<utt>.wav``
(after extracting the per-speaker ``data_aishell/wav/S*.tar.gz`` there, as Kaldi's
recipe does) and ``$AISHELL/data_aishell/transcript/aishell_transcript_v0.8.txt``
(``<utt> <words>``, words separated by spaces); ``$AISHELL`` may also be ``data_aishell``
itself. Writes ``<out_dir>/aishell_{train,dev,test}`` (the splits on disk); the spaces
between Chinese words are removed (the reference's normalisation would remove them too,
docs/labels.md#text-normalisation). Utterances without a transcript are left out, as in Kaldi's
recipe, and counted.
"""

from pathlib import Path
from typing import Dict

from prep_common import Utts, get_parser, parse_args, report_skipped, role_of_split, write_and_check

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
    untranscribed = 0
    for wav in sorted(wav_dir.glob("*/*.wav")):
        if wav.stem not in transcripts:
            untranscribed += 1
            continue
        utts[wav.stem] = {
            "task": "<TRANSCRIBE>",
            "wav.scp": str(wav.resolve()),
            "utt2spk": wav.parent.name,
            "text": transcripts[wav.stem],
        }
    report_skipped(str(wav_dir), untranscribed, "no transcript in aishell_transcript_v0.8.txt")
    return utts


def main(argv=None) -> None:
    """Command-line entry."""
    parser = get_parser(__doc__, DB_VAR)
    args = parse_args(parser, DB_VAR, argv)
    root = args.db_root if (args.db_root / "wav").is_dir() else args.db_root / "data_aishell"
    transcripts = read_transcripts(root / TRANSCRIPT.relative_to("data_aishell"))
    splits = [s for s in ("train", "dev", "test") if (root / "wav" / s).is_dir()]
    if not splits:
        raise RuntimeError(f"{root}/wav: no train/dev/test folder; extract the S*.tar.gz there")
    for split in splits:
        utts = prepare_split(root / "wav" / split, transcripts)
        write_and_check(args.out_dir / f"aishell_{split}", utts, role_of_split(split))


if __name__ == "__main__":
    main()
