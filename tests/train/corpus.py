"""A small synthetic corpus for training tests: tones as speech, labels tied to them."""

from pathlib import Path
from typing import Dict

import numpy as np
import soundfile

from espnet2_echat.data.datadir import write_data_dir

FS = 16000
# Three "speakers": each tone frequency says one sentence, with fixed labels.
PHRASES = [
    (220.0, "good morning to you", "<MALE>", "<ADULT>", "<HAPPY>"),
    (440.0, "the weather is cold", "<FEMALE>", "<ADULT>", "<SAD>"),
    (880.0, "please open the door", "<FEMALE>", "<CHILD>", "<NEUTRAL>"),
]
REPLIES = ["nice to hear that", "stay warm today", "sure here you go"]


def tone(freq: float, seconds: float, seed: int) -> np.ndarray:
    t = np.arange(int(FS * seconds)) / FS
    rng = np.random.RandomState(seed)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.randn(len(t))).astype(np.float32)


def tokens_for(i: int, n: int = 12) -> str:
    """Speech tokens of reply i: a fixed pattern per reply (K = 256)."""
    return " ".join(str((17 * i + 5 * k) % 256) for k in range(n))


def make_corpus(root: Path, num_per_phrase: int = 4) -> Dict[str, Path]:
    """Write asr, s2s, tts and t2t dirs for train and valid; returns {name: dir}."""
    root = Path(root)
    wav_dir = root / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    dirs = {}
    for split, n in (("train", num_per_phrase), ("valid", 1)):
        asr, s2s, tts, t2t = {}, {}, {}, {}
        for i, (freq, text, gender, age, emotion) in enumerate(PHRASES):
            for j in range(n):
                utt = f"{split}_p{i}_{j}"
                wav = wav_dir / f"{utt}.wav"
                seed = 1000 * (split == "valid") + 100 * i + j
                soundfile.write(wav, tone(freq, 0.6 + 0.05 * j, seed), FS, subtype="PCM_16")
                spk = f"spk{i}"
                asr[utt] = {
                    "wav.scp": str(wav), "utt2spk": spk, "text": text,
                    "task": "<TRANSCRIBE> <GENDER>" if j % 2 else "<TRANSCRIBE>",
                    "utt2gender": gender, "utt2age": age, "utt2emotion": emotion,
                }
                s2s[utt] = {
                    "wav.scp": str(wav), "utt2spk": spk, "text": text,
                    "task": "<S2TCHAT> <TEXT2TOKEN>", "reply": REPLIES[i],
                    "speech_token": tokens_for(i),
                }
                tts[utt] = {"task": "<TEXT2TOKEN>", "text": REPLIES[i],
                            "speech_token": tokens_for(i)}
                t2t[utt] = {"task": "<TEXT2TEXT>", "question": text, "reply": REPLIES[i]}
        for name, utts in (("asr", asr), ("s2s", s2s), ("tts", tts), ("t2t", t2t)):
            d = root / f"{split}_{name}"
            write_data_dir(d, utts)
            dirs[f"{split}_{name}"] = d
    return dirs
