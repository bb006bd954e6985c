"""Turn a caller's audio array into float samples in [-1, 1], or refuse it clearly.

Integer PCM is scaled by its full range (int16 / 32768, int32 / 2**31, uint8 centred on
128 / 128), as soundfile reads it; float input is taken as it is. NaN or infinite samples
and complex, boolean or object arrays are refused: they would decode into nonsense
("!!!") instead of failing. (Too short audio is refused by the caller.)
"""

from typing import Union

import numpy as np
import torch


def as_float_waveform(speech: Union[np.ndarray, torch.Tensor, list], what: str = "audio") -> np.ndarray:
    """float32 samples of ``speech``; ``what`` names the input in error messages."""
    if isinstance(speech, torch.Tensor):
        speech = speech.detach().cpu().numpy()
    wav = np.asarray(speech)
    kind = wav.dtype.kind
    if kind == "f":
        wav = wav.astype(np.float32, copy=False)
    elif kind == "i":
        wav = (wav.astype(np.float64) / -np.iinfo(wav.dtype).min).astype(np.float32)
    elif kind == "u":
        half = (np.iinfo(wav.dtype).max + 1) // 2
        wav = ((wav.astype(np.float64) - half) / half).astype(np.float32)
    else:
        raise ValueError(
            f"{what}: expected float or integer PCM samples, got an array of dtype {wav.dtype}"
        )
    if not np.isfinite(wav).all():
        bad = int((~np.isfinite(wav)).sum())
        raise ValueError(f"{what}: {bad} sample(s) are NaN or infinite; expected finite samples")
    return wav
