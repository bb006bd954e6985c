"""ESPnet's ``format_wav_scp`` job for speech-LLM data dirs: every audio entry becomes a
16 kHz mono 16-bit wav file.

A ``wav.scp`` value is a file path (any format libsndfile reads: wav, flac, mp3, ogg),
a Kaldi ark entry (``foo.ark:1234``, read with kaldiio), or a pipe (``cmd ... |``, run
with bash; its standard output must be audio, e.g. ``ffmpeg ... -f wav - |``). With a
``segments`` file (``uttid recid start end`` in seconds) the scp is keyed by recording
and each utterance is cut out of its recording. The audio of earlier turns named in a
``history`` file (``user_wav``, ``reply_wav``) is formatted the same way
(:func:`format_history`). Entries that cannot be read are not written and are listed, with
the reason, in the ``dropped`` file; nothing is left out without a line there.
"""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import soundfile

from espnet2_echat.data.audio import resample, write_pcm16
from espnet2_echat.data.datadir import read_kaldi_map
from espnet2_echat.progress import Tally


class AudioReadError(Exception):
    """An entry of a wav.scp could not be turned into audio."""


@dataclass(frozen=True)
class Segment:
    """Where one utterance lies in its recording."""

    rec: str
    start: float
    end: float


def read_entry(value: str) -> Tuple[np.ndarray, int]:
    """Audio of one ``wav.scp`` value as ``(mono float64 samples, sample rate)``."""
    value = value.strip()
    try:
        if value.endswith("|"):
            proc = subprocess.run(
                ["bash", "-c", value[:-1]], capture_output=True, timeout=600, check=False
            )
            if proc.returncode != 0:
                err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
                raise AudioReadError(
                    f"pipe exited with {proc.returncode}: {err[-1] if err else 'no message'}"
                )
            wav, fs = soundfile.read(io.BytesIO(proc.stdout), dtype="float64", always_2d=True)
        elif re.search(r":\d+$", value) and not Path(value).exists():
            import kaldiio

            loaded = kaldiio.load_mat(value)
            if not isinstance(loaded, tuple):
                raise AudioReadError("the ark entry holds a matrix, not audio (rate, samples)")
            fs, wav = loaded
            wav = np.asarray(wav, dtype="float64")
            if np.issubdtype(np.asarray(loaded[1]).dtype, np.integer):
                wav = wav / 32768.0
            wav = wav.reshape(len(wav), -1)
        else:
            if not Path(value).is_file():
                raise AudioReadError(f"audio file {value} does not exist")
            wav, fs = soundfile.read(value, dtype="float64", always_2d=True)
    except AudioReadError:
        raise
    except Exception as e:  # soundfile/kaldiio raise their own types
        raise AudioReadError(f"cannot read {value[:200]!r}: {e}") from e
    if wav.shape[0] == 0:
        raise AudioReadError("no samples")
    return wav.mean(axis=1), int(fs)


def read_segments(path: Path) -> Dict[str, Segment]:
    """``segments`` file -> ``{uttid: Segment}``, failing on a malformed line."""
    out: Dict[str, Segment] = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            utt, rec, start, end = parts[0], parts[1], float(parts[2]), float(parts[3])
        except (IndexError, ValueError) as e:
            raise ValueError(f"{path}:{lineno}: expected 'uttid recid start end'") from e
        out[utt] = Segment(rec, start, end)
    return out


def _items(
    scp: Dict[str, str], segments: Optional[Dict[str, Segment]]
) -> Iterator[Tuple[str, str, Optional[Segment]]]:
    """``(uttid, scp value, segment or None)`` in the scp's (or segments') order."""
    if segments is None:
        for utt, value in scp.items():
            yield utt, value, None
        return
    for utt, seg in segments.items():
        yield utt, scp.get(seg.rec, ""), seg


def format_wav_scp(
    scp_path: Path,
    out_dir: Path,
    fs: int = 16000,
    segments_path: Optional[Path] = None,
    progress_every: int = 100,
    tally: Optional[Tally] = None,
) -> Tuple[int, List[Tuple[str, str]]]:
    """Write ``out_dir/{wav.scp, utt2num_samples, dropped}`` and the wavs in ``out_dir/data``.

    Returns ``(number written, [(uttid, reason), ...] dropped)``; ``tally`` (a progress bar
    and counts) counts each entry as done or failed (dropped).
    """
    tally = Tally() if tally is None else tally
    out_dir = Path(out_dir)
    wav_dir = out_dir / "data"
    wav_dir.mkdir(parents=True, exist_ok=True)
    scp = read_kaldi_map(Path(scp_path))
    segments = read_segments(segments_path) if segments_path else None
    total = len(segments) if segments is not None else len(scp)
    written: Dict[str, str] = {}
    num_samples: Dict[str, str] = {}
    dropped: List[Tuple[str, str]] = []
    cache: Tuple[str, Optional[Tuple[np.ndarray, int]]] = ("", None)
    tally.begin(total, f"formatting {scp_path}")
    for i, (utt, value, seg) in enumerate(_items(scp, segments), 1):
        try:
            if seg is not None and not value:
                raise AudioReadError(f"recording {seg.rec} is not in {scp_path}")
            if seg is not None and cache[0] == seg.rec and cache[1] is not None:
                wav, file_fs = cache[1]
            else:
                wav, file_fs = read_entry(value)
                if seg is not None:
                    cache = (seg.rec, (wav, file_fs))
            if seg is not None:
                start, end = int(round(seg.start * file_fs)), int(round(seg.end * file_fs))
                if not 0 <= start < end <= len(wav) + int(0.01 * file_fs):
                    raise AudioReadError(
                        f"segment {seg.start}-{seg.end} s outside recording {seg.rec} "
                        f"({len(wav) / file_fs:.3f} s)"
                    )
                wav = wav[start:end]
            wav = resample(wav, file_fs, fs)
            path = (wav_dir / f"{utt}.wav").resolve()
            write_pcm16(path, wav, fs)
            written[utt] = str(path)
            num_samples[utt] = str(len(wav))
            tally.add("done")
        except AudioReadError as e:
            dropped.append((utt, str(e)))
            tally.add("failed")
            logging.warning("%s: %s dropped: %s", scp_path, utt, e)
        if progress_every and (i % progress_every == 0 or i == total):
            logging.info("%s: %d/%d done, %d dropped", scp_path, i, total, len(dropped))
    tally.end()
    _write_map(out_dir / "wav.scp", written)
    _write_map(out_dir / "utt2num_samples", num_samples)
    _write_map(out_dir / "dropped", {u: " ".join(r.split()) for u, r in dropped})
    return len(written), dropped


def _write_map(path: Path, entries: Dict[str, str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for key in sorted(entries):
            f.write(f"{key} {entries[key]}\n")


def format_history(
    history_path: Path, out_dir: Path, fs: int = 16000, tally: Optional[Tally] = None
) -> Tuple[int, List[Tuple[str, str]]]:
    """Format the audio of every past turn of a ``history`` file.

    Writes ``out_dir/history`` (the same turns, audio paths pointing at 16 kHz mono wavs
    under ``out_dir/data``), ``out_dir/dropped`` (utterances with unreadable turn audio)
    and returns ``(utterances written, dropped)``. A file shared by several turns is
    formatted once. ``tally`` counts each utterance as done or failed (dropped).
    """
    tally = Tally() if tally is None else tally
    out_dir = Path(out_dir)
    wav_dir = out_dir / "data"
    wav_dir.mkdir(parents=True, exist_ok=True)
    done: Dict[str, str] = {}
    written: Dict[str, str] = {}
    dropped: List[Tuple[str, str]] = []
    entries = read_kaldi_map(Path(history_path))
    tally.begin(len(entries), f"formatting {history_path}")
    for utt, value in entries.items():
        try:
            turns = json.loads(value)
            for i, turn in enumerate(turns):
                for key in ("user_wav", "reply_wav"):
                    src = turn.get(key)
                    if not src:
                        continue
                    if src not in done:
                        try:
                            wav, file_fs = read_entry(src)
                        except AudioReadError as e:
                            raise AudioReadError(f"history turn {i} {key}: {e}") from e
                        path = (wav_dir / f"{utt}-h{i}-{key}.wav").resolve()
                        write_pcm16(path, resample(wav, file_fs, fs), fs)
                        done[src] = str(path)
                    turn[key] = done[src]
            written[utt] = json.dumps(turns, ensure_ascii=False)
            tally.add("done")
        except (AudioReadError, json.JSONDecodeError, AttributeError, TypeError) as e:
            dropped.append((utt, str(e)))
            tally.add("failed")
            logging.warning("%s: %s dropped: %s", history_path, utt, e)
    tally.end()
    _write_map(out_dir / "history", written)
    _write_map(out_dir / "dropped", {u: " ".join(r.split()) for u, r in dropped})
    return len(written), dropped
