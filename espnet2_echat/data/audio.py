"""Small audio helpers shared by data preparation: read as mono, resample, write 16-bit.

soundfile reads every format libsndfile knows (wav, flac, ogg, mp3); scipy's polyphase
filter resamples (the corpus scripts and the OSUM shard packer need no torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import soundfile


def resample(wav: np.ndarray, from_fs: int, to_fs: int) -> np.ndarray:
    """Polyphase resampling; returns the input when the rates agree."""
    if from_fs == to_fs:
        return wav
    from scipy import signal  # here: scipy costs ~1 s, and most readers never resample

    g = np.gcd(int(from_fs), int(to_fs))
    return signal.resample_poly(wav, to_fs // g, from_fs // g)


def load_audio(path: Union[str, Path, BinaryIO], fs: int = 16000) -> np.ndarray:
    """Read audio as mono float64 at ``fs`` Hz (channels averaged, resampled)."""
    wav, file_fs = soundfile.read(path, dtype="float64", always_2d=True)
    return resample(wav.mean(axis=1), file_fs, fs)


def write_pcm16(path: Union[str, Path, BinaryIO], wav: np.ndarray, fs: int = 16000) -> None:
    """Write a float waveform in [-1, 1] as 16-bit PCM WAV (clipped, rounded)."""
    pcm = np.clip(np.round(np.asarray(wav) * 32767), -32768, 32767).astype(np.int16)
    soundfile.write(path, pcm, fs, subtype="PCM_16", format="WAV")
