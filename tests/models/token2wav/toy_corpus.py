"""A toy token2wav corpus whose tokens really describe the audio.

Each utterance is a sequence of 40 ms (one 25 Hz token) tones; token id k means the tone
``TONES[k % len(TONES)]`` Hz, so a flow model can learn the token -> mel mapping in a few
hundred CPU steps.
"""

from pathlib import Path
from typing import Dict, List

import numpy as np
import soundfile

FS = 16000
TONES = [220.0, 330.0, 440.0, 550.0, 660.0, 880.0, 990.0, 1320.0]
SAMPLES_PER_TOKEN = FS // 25


def tone_wav(tokens: List[int], fs: int = FS) -> np.ndarray:
    """Render tokens as a phase-continuous tone sequence at ``fs``."""
    freqs = np.repeat([TONES[t % len(TONES)] for t in tokens], fs // 25)
    phase = 2 * np.pi * np.cumsum(freqs) / fs
    return (0.3 * np.sin(phase)).astype(np.float32)


def make_toy_datadir(
    out: Path,
    num_utts: int = 6,
    seed: int = 0,
    min_tokens: int = 40,
    max_tokens: int = 60,
) -> Dict[str, List[int]]:
    """Write wav.scp, speech_token and speech_shape under ``out``; return the tokens."""
    rng = np.random.default_rng(seed)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    utts = {}
    for i in range(num_utts):
        n = int(rng.integers(min_tokens, max_tokens))
        # runs of 3-6 tokens of the same tone, like slowly changing speech units
        tokens: List[int] = []
        while len(tokens) < n:
            tokens += [int(rng.integers(0, len(TONES)))] * int(rng.integers(3, 7))
        utts[f"utt{i:02d}"] = tokens[:n]
    with (out / "wav.scp").open("w") as scp, (out / "speech_token").open("w") as tok, (
        out / "speech_shape"
    ).open("w") as shape:
        for uttid, tokens in utts.items():
            wav = tone_wav(tokens)
            path = (out / "wav" / f"{uttid}.wav").resolve()
            soundfile.write(path, wav, FS, subtype="PCM_16")
            scp.write(f"{uttid} {path}\n")
            tok.write(f"{uttid} {' '.join(map(str, tokens))}\n")
            shape.write(f"{uttid} {len(wav)}\n")
    return utts
