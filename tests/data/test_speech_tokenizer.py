"""Speech-token extraction: the stand-in k-means tokenizer and the S3 wrapper."""

import json
import sys
import types

import numpy as np
import pytest
import soundfile
import torch

from espnet2_echat.data import speech_tokenizer as st
from espnet2_echat.data.datadir import read_kaldi_map, validate_data_dir, write_data_dir

FS = 16000


def _tone(freq: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * FS)) / FS
    return 0.3 * np.sin(2 * np.pi * freq * t)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("wavs")
    out = {}
    for name, freq in (("low", 200.0), ("high", 2500.0)):
        path = d / f"{name}.wav"
        soundfile.write(path, _tone(freq, 1.0), FS, subtype="PCM_16")
        out[name] = str(path)
    path = d / "low8k.wav"
    soundfile.write(path, _tone(200.0, 1.0)[::2], 8000, subtype="PCM_16")
    out["low8k"] = str(path)
    return out


@pytest.fixture(scope="module")
def tokenizer(wavs) -> st.StandInSpeechTokenizer:
    return st.StandInSpeechTokenizer.train([wavs["low"], wavs["high"]], vocab_size=4, seed=0)


def test_rate_range_and_nearest_centroid(tokenizer, wavs):
    wav = st.load_audio(wavs["low"])
    ids = tokenizer.encode(wav, FS)
    assert len(ids) == 1 + len(wav) // 640 == 26  # 25 Hz
    assert all(0 <= i < 4 for i in ids)
    feats = st.StandInSpeechTokenizer.features(wav)
    dist = np.linalg.norm(feats[:, None, :] - tokenizer.centroids[None], axis=2)
    # the chosen centroid is a nearest one (ties between equal centroids may go either way)
    np.testing.assert_allclose(
        dist[np.arange(len(ids)), ids], dist.min(axis=1), rtol=1e-9, atol=1e-6
    )


def test_different_sounds_get_different_tokens(tokenizer, wavs):
    low = tokenizer.encode(st.load_audio(wavs["low"]))
    high = tokenizer.encode(st.load_audio(wavs["high"]))
    inner = slice(2, -2)  # edge frames see the padding
    assert not set(low[inner]) & set(high[inner])
    # 8 kHz input is resampled to 16 kHz before tokenising
    # (k-means may leave equal centroids, so compare the centroids chosen, not their ids)
    low8k = tokenizer.encode(st.load_audio(wavs["low8k"]))
    np.testing.assert_allclose(
        tokenizer.centroids[low8k[inner]], tokenizer.centroids[low[inner]], atol=1e-9
    )


def test_save_load_roundtrip(tokenizer, wavs, tmp_path):
    path = tmp_path / "standin.npz"
    tokenizer.save(path)
    assert path.is_file()
    again = st.load_speech_tokenizer("standin", path)
    wav = st.load_audio(wavs["high"])
    assert again.encode(wav) == tokenizer.encode(wav) and again.vocab_size == 4
    bad = tmp_path / "bad.npz"
    np.savez(bad, centroids=np.zeros((2, 80)), kind=np.array("other"))
    with pytest.raises(ValueError, match="not a stand-in"):
        st.StandInSpeechTokenizer.load(bad)


def test_extract_fills_speech_token_and_history(tokenizer, wavs, tmp_path):
    history = [
        {
            "user_wav": wavs["low"],
            "user_text": "hi",
            "reply": "hello",
            "speech_token": [],
            "reply_wav": wavs["high"],
        }
    ]
    utts = {
        "a-s2s": {
            "task": "<S2TCHAT> <TEXT2TOKEN>",
            "wav.scp": wavs["low"],
            "utt2spk": "a",
            "reply": "ok",
            "reply_wav.scp": wavs["high"],
        },
        "a-hist": {
            "task": "<S2TCHAT> <TEXT2TOKEN> <HISTORY>",
            "wav.scp": wavs["low"],
            "utt2spk": "a",
            "reply": "ok",
            "reply_wav.scp": wavs["high"],
            "history": json.dumps(history),
        },
        "a-asr": {"task": "<TRANSCRIBE>", "wav.scp": wavs["low"], "utt2spk": "a", "text": "x"},
        "b-tts": {"task": "<TEXT2TOKEN>", "wav.scp": wavs["low"], "utt2spk": "b", "text": "hi"},
    }
    d = tmp_path / "dir"
    write_data_dir(d, utts)
    assert validate_data_dir(d, speech_token_vocab=4)  # tokens missing
    assert st.extract_speech_tokens(d, tokenizer) == 3
    tokens = read_kaldi_map(d / "speech_token")
    assert sorted(tokens) == ["a-hist", "a-s2s", "b-tts"]
    high = tokenizer.encode(st.load_audio(wavs["high"]))
    assert tokens["a-s2s"] == " ".join(map(str, high))
    assert tokens["b-tts"] == " ".join(map(str, tokenizer.encode(st.load_audio(wavs["low"]))))
    assert json.loads(read_kaldi_map(d / "history")["a-hist"])[0]["speech_token"] == high
    assert validate_data_dir(d, speech_token_vocab=4) == []


def test_s3_wrapper_builds_25hz_model(monkeypatch, tmp_path, wavs):
    calls = {}

    class FakeS3:
        def __init__(self, name):
            calls["name"] = name
            self.config = types.SimpleNamespace(n_codebook_size=4096)

        def init_from_onnx(self, path):
            calls["onnx"] = path

        def eval(self):
            return self

        def quantize(self, mels, lens):
            calls["mel_shape"] = tuple(mels.shape)
            return torch.tensor([[7, 8, 9, 0]]), torch.tensor([3])

    fake = types.ModuleType("s3tokenizer")
    fake.S3Tokenizer = FakeS3
    fake.log_mel_spectrogram = lambda audio: torch.zeros(128, audio.shape[0] // 160)
    fake.padding = lambda mels: (torch.stack(mels), torch.tensor([m.shape[1] for m in mels]))
    monkeypatch.setitem(sys.modules, "s3tokenizer", fake)
    onnx = tmp_path / "speech_tokenizer_v1.onnx"
    onnx.write_bytes(b"x")
    tok = st.load_speech_tokenizer("s3", onnx)
    assert calls["name"] == "speech_tokenizer_v1_25hz" and calls["onnx"] == str(onnx)
    assert tok.encode(st.load_audio(wavs["low8k"]), FS) == [7, 8, 9]
    assert calls["mel_shape"] == (1, 128, 100)
    with pytest.raises(FileNotFoundError):
        st.S3SpeechTokenizer(tmp_path / "missing.onnx")


def test_s3_missing_package_is_clear(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "s3tokenizer", None)
    with pytest.raises(ImportError, match="pip install s3tokenizer"):
        st.S3SpeechTokenizer(tmp_path / "x.onnx")
