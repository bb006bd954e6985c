"""Predicted MOS of generated speech with DNSMOS (the ``speechmos`` wheel ships the ONNX models).

DNSMOS (Microsoft, MIT) predicts P.835 signal / background / overall quality and a P.808
overall MOS, from 9 s windows (shorter clips are repeated). Scores depend on level, so each
waveform is peak-normalised to 0.9 first (the convention of offline_assets.md). The
P.808 score is the one usually quoted for TTS.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

MOS_KEYS = ("ovrl_mos", "sig_mos", "bak_mos", "p808_mos")
_PEAK = 0.9


def dnsmos(wav: np.ndarray, rate: int = 16000) -> Optional[Dict[str, float]]:
    """DNSMOS scores of one 16 kHz waveform; None for an all-zero waveform (no level)."""
    from speechmos import dnsmos as _dnsmos

    if rate != 16000:
        raise ValueError(f"DNSMOS needs 16 kHz audio, got {rate} Hz")
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    if peak == 0.0:
        return None
    result = _dnsmos.run((wav * (_PEAK / peak)).astype(np.float32), sr=rate)
    return {k: float(result[k]) for k in MOS_KEYS}
