#!/usr/bin/env python3
"""Asterisk English prompts -> a real-speech ASR test set (``asterisk_en``).

Debian's ``asterisk-core-sounds-en-wav`` holds 568 prompts recorded by one professional
female voice (Allison Smith, CC-BY-SA-3.0) at 8 kHz under
``/usr/share/asterisk/sounds/en_US_f_Allison/``; their transcripts are in
``asterisk-core-sounds-en``'s ``core-sounds-en.txt.gz`` (``name: text``). Entries whose
text is a bracketed description (``[beep tone]``) are skipped. Audio is resampled to
16 kHz and written under ``<out_dir>/asterisk_en/wav``; the data dir is
``<out_dir>/asterisk_en``. ``utt2gender``/``utt2age`` are
``<FEMALE>``/``<ADULT>``.
"""

import argparse
import gzip
import logging
from pathlib import Path
from typing import Dict, List, Optional

from prep_common import Utts, one_line, write_and_check

from espnet2_echat.data.audio import load_audio, write_pcm16

SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")


def read_transcripts(path: Path) -> Dict[str, str]:
    """Prompt name (``digits/0``) -> text, without bracketed non-speech entries."""
    opener = gzip.open if path.suffix == ".gz" else open
    out = {}
    with opener(path, "rt", encoding="utf-8", errors="strict") as f:
        for line in f:
            if line.startswith(";") or ":" not in line:
                continue
            name, text = line.split(":", 1)
            text = one_line(text)
            if text and not text.startswith("["):
                out[name.strip()] = text
    return out


def prepare(sounds: Path, transcripts: Path, out_dir: Path, max_utts: Optional[int] = None) -> Path:
    """Write the data dir and 16 kHz wavs; return the data dir."""
    texts = read_transcripts(transcripts)
    wav_dir = out_dir / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    names: List[str] = sorted(n for n in texts if (sounds / f"{n}.wav").is_file())
    if not names:
        raise RuntimeError(
            f"no transcribed wavs under {sounds} (install asterisk-core-sounds-en-wav)"
        )
    utts: Utts = {}
    if max_utts is not None and max_utts < len(names):  # evenly spaced, deterministic
        names = [names[i * len(names) // max_utts] for i in range(max_utts)]
    for name in names:
        utt = "allison-" + name.replace("/", "_")
        wav = load_audio(str(sounds / f"{name}.wav"), 16000)
        path = wav_dir / f"{utt}.wav"
        write_pcm16(path, wav, 16000)
        utts[utt] = {
            "task": "<TRANSCRIBE>",
            "wav.scp": str(path.resolve()),
            "utt2spk": "allison",
            "text": texts[name],
            "utt2gender": "<FEMALE>",
            "utt2age": "<ADULT>",
        }
    return write_and_check(out_dir, utts, "test", expected_fs=16000)


def main(argv=None) -> None:
    """Command-line entry."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sounds_dir", type=Path, default=SOUNDS)
    parser.add_argument("--transcripts", type=Path, default=TRANSCRIPTS)
    parser.add_argument("--out_dir", type=Path, required=True, help="where data dirs go")
    parser.add_argument(
        "--max_utts", type=int, default=None, help="keep this many prompts, evenly spaced"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for path, package in (
        (args.sounds_dir, "asterisk-core-sounds-en-wav"),
        (args.transcripts, "asterisk-core-sounds-en"),
    ):
        if not path.exists():
            parser.error(f"{path} not found: apt-get install {package}")
    prepare(args.sounds_dir, args.transcripts, args.out_dir / "asterisk_en", args.max_utts)


if __name__ == "__main__":
    main()
