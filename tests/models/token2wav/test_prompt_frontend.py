"""The CosyVoice speaker-prompt path through onnxruntime (CAM++ and the S3 tokenizer).

No real ``campplus.onnx`` / ``speech_tokenizer_v1.onnx`` exists offline, so the tests
build small stand-in graphs with ``onnx.helper`` that have the real files' interfaces:

- CAM++: input ``(B, T, 80)`` float32 (dynamic B and T) -> ``(B, 192)`` float32; here a
  frame layer (MatMul + Relu), mean pooling over time and a MatMul to 192.
- S3 tokenizer: inputs ``feats (B, 128, T)`` float32 and ``feats_length (B,)`` int32 ->
  token ids; here 4 stacked 100 Hz mel frames (the first ``feats_length // 4 * 4``) through
  a fixed projection and an argmax, i.e. 25 Hz tokens.

The expected values are computed here independently: the fbank with
``torchaudio.compliance.kaldi`` and the Whisper log-mel with numpy (as
``whisper.log_mel_spectrogram``: centred reflect-padded STFT, last frame dropped, Slaney
mel filters, log10, max - 8 floor, (x + 4) / 4), then the stand-in graphs in numpy.
"""

from pathlib import Path

import librosa
import numpy as np
import onnx
import pytest
import soundfile
import torch
import torchaudio
import yaml
from onnx import TensorProto, helper, numpy_helper

from espnet2_echat.bin import token2wav_store_prompt
from espnet2_echat.models.token2wav.prompt_frontend import (
    campplus_embedding,
    s3_tokens,
    whisper_log_mel,
)
from espnet2_echat.tasks.token2wav import Token2WavTask
from tests.helpers import REPO_ROOT

CONF = REPO_ROOT / "conf" / "token2wav" / "train_tiny.yaml"
N_TOKENS = 64  # stand-in S3 codebook (the real one has 4096)
STACK = 4  # 100 Hz mel frames per 25 Hz token
FS = 22050  # the tiny model's mel rate; the prompt wav is written at it


def _save_model(path: Path, nodes, inputs, outputs, weights) -> Path:
    graph = helper.make_graph(
        nodes,
        "standin",
        inputs,
        outputs,
        initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _campplus_weights():
    rng = np.random.default_rng(1)
    return {
        "w1": rng.standard_normal((80, 64)).astype(np.float32) / 8,
        "w2": rng.standard_normal((64, 192)).astype(np.float32) / 8,
    }


def make_campplus(path: Path) -> Path:
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("MatMul", ["input", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("ReduceMean", ["hr"], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["pooled", "w2"], ["output"]),
    ]
    return _save_model(
        path,
        nodes,
        [helper.make_tensor_value_info("input", f, ["B", "T", 80])],
        [helper.make_tensor_value_info("output", f, ["B", 192])],
        _campplus_weights(),
    )


def _s3_weights():
    rng = np.random.default_rng(2)
    proj = rng.standard_normal((128 * STACK, N_TOKENS))
    proj -= proj.mean(axis=0)  # blind to the log-mel's common offset: varied tokens
    return {
        "proj": proj.astype(np.float32),
        "stack": np.array([STACK], dtype=np.int64),
        "zero": np.array([0], dtype=np.int64),
        "axis1": np.array([1], dtype=np.int64),
        "shape": np.array([0, -1, 128 * STACK], dtype=np.int64),
    }


def make_s3(path: Path, out_dtype=TensorProto.INT64) -> Path:
    nodes = [
        helper.make_node("Transpose", ["feats"], ["x"], perm=[0, 2, 1]),
        helper.make_node("Cast", ["feats_length"], ["len64"], to=TensorProto.INT64),
        helper.make_node("Div", ["len64", "stack"], ["n"]),
        helper.make_node("Mul", ["n", "stack"], ["end"]),
        helper.make_node("Slice", ["x", "zero", "end", "axis1"], ["xs"]),
        helper.make_node("Reshape", ["xs", "shape"], ["stacked"]),
        helper.make_node("MatMul", ["stacked", "proj"], ["logits"]),
        helper.make_node("ArgMax", ["logits"], ["ids"], axis=2, keepdims=0),
        helper.make_node("Cast", ["ids"], ["indices"], to=out_dtype),
    ]
    return _save_model(
        path,
        nodes,
        [
            helper.make_tensor_value_info("feats", TensorProto.FLOAT, ["B", 128, "T"]),
            helper.make_tensor_value_info("feats_length", TensorProto.INT32, ["B"]),
        ],
        [helper.make_tensor_value_info("indices", out_dtype, ["B", "N"])],
        _s3_weights(),
    )


def expected_embedding(wav_16k: torch.Tensor) -> np.ndarray:
    feat = torchaudio.compliance.kaldi.fbank(
        wav_16k, num_mel_bins=80, dither=0.0, sample_frequency=16000
    ).double()
    feat = (feat - feat.mean(dim=0, keepdim=True)).numpy()
    w = _campplus_weights()
    pooled = np.maximum(feat @ w["w1"], 0).mean(axis=0)
    return (pooled @ w["w2"])[None]


def numpy_whisper_log_mel(audio: np.ndarray, n_mels: int = 128) -> np.ndarray:
    """whisper.log_mel_spectrogram(audio, n_mels) (padding=0) in float64 numpy: (n_mels, T)."""
    n_fft, hop = 400, 160
    x = np.pad(audio.astype(np.float64), n_fft // 2, mode="reflect")
    n_frames = 1 + (len(x) - n_fft) // hop
    frames = np.stack([x[i * hop : i * hop + n_fft] for i in range(n_frames)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    power = power[:-1].T  # whisper drops the last STFT frame
    filters = librosa.filters.mel(sr=16000, n_fft=n_fft, n_mels=n_mels)
    log_spec = np.log10(np.maximum(filters @ power, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def expected_tokens(wav_16k: torch.Tensor) -> np.ndarray:
    mel = numpy_whisper_log_mel(wav_16k[0].numpy())
    n = mel.shape[1] // STACK
    stacked = mel[:, : n * STACK].T.reshape(n, 128 * STACK)
    logits = stacked @ _s3_weights()["proj"].astype(np.float64)
    top2 = np.sort(logits, axis=1)[:, -2:]
    assert (top2[:, 1] - top2[:, 0]).min() > 1e-3, "argmax too close to a tie to compare"
    return logits.argmax(axis=1)[None]


def speechlike(seconds: float, fs: int, seed: int = 0) -> np.ndarray:
    """60 ms segments of random pitch (150-3000 Hz, 3 harmonics) and loudness, plus noise."""
    rng = np.random.default_rng(seed)
    n, seg = int(seconds * fs), int(0.06 * fs)
    f0 = np.repeat(np.exp(rng.uniform(np.log(150), np.log(3000), n // seg + 1)), seg)[:n]
    amp = np.repeat(rng.uniform(0.1, 1.0, n // seg + 1), seg)[:n]
    phase = 2 * np.pi * np.cumsum(f0) / fs
    wav = amp * sum(np.sin(k * phase) / k for k in range(1, 4))
    wav += 0.01 * rng.standard_normal(n)
    return (0.2 * wav).astype(np.float32)


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cosyvoice_onnx")
    make_campplus(d / "campplus.onnx")
    make_s3(d / "speech_tokenizer_v1.onnx")
    return d


@pytest.fixture(scope="module")
def wav_16k() -> torch.Tensor:
    return torch.from_numpy(speechlike(1.93, 16000))[None]


def test_whisper_log_mel_equals_whisper(wav_16k):
    """Same frames as whisper (N // 160, no 30 s padding) and the same values."""
    mel = whisper_log_mel(wav_16k)
    assert mel.dtype == np.float32
    assert mel.shape == (1, 128, wav_16k.shape[1] // 160)
    ref = numpy_whisper_log_mel(wav_16k[0].numpy())
    assert np.abs(mel[0] - ref).max() < 1e-4


def test_campplus_embedding(onnx_dir, wav_16k):
    emb = campplus_embedding(wav_16k, onnx_dir / "campplus.onnx")
    assert emb.dtype == torch.float32 and emb.shape == (1, 192)
    np.testing.assert_allclose(emb.numpy(), expected_embedding(wav_16k), atol=1e-4)


@pytest.mark.parametrize("out_dtype", [TensorProto.INT64, TensorProto.INT32])
def test_s3_tokens(tmp_path, wav_16k, out_dtype):
    path = make_s3(tmp_path / "speech_tokenizer_v1.onnx", out_dtype)
    tokens = s3_tokens(wav_16k, path)
    expected = expected_tokens(wav_16k)
    assert tokens.dtype == torch.long
    # 25 Hz tokens from 100 Hz frames: 193 frames -> 48 tokens
    assert tokens.shape == (1, 48) == expected.shape
    assert tokens.tolist() == expected.tolist()
    assert len(set(tokens[0].tolist())) > 5  # the check is not on a constant sequence


def test_bad_inputs(onnx_dir, wav_16k, tmp_path):
    with pytest.raises(ValueError, match="16 kHz"):
        s3_tokens(wav_16k, onnx_dir / "speech_tokenizer_v1.onnx", sample_rate=22050)
    with pytest.raises(ValueError, match="16 kHz"):
        campplus_embedding(wav_16k, onnx_dir / "campplus.onnx", sample_rate=8000)
    with pytest.raises(ValueError, match=r"at most 30 s \(got 30.01 s\)"):
        s3_tokens(torch.zeros(1, 30 * 16000 + 160), onnx_dir / "speech_tokenizer_v1.onnx")
    with pytest.raises(FileNotFoundError, match="no ONNX file .*missing.onnx"):
        campplus_embedding(wav_16k, tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="expected 2 input"):
        s3_tokens(wav_16k, onnx_dir / "campplus.onnx")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A randomly initialised tiny token2wav without a stored prompt."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("t2w_bare")
    model_conf = yaml.safe_load(CONF.read_text(encoding="utf-8"))["model_conf"]
    args = Token2WavTask.get_parser().parse_args(["--model_conf", str(model_conf)])
    model = Token2WavTask.build_model(args)
    with (out / "config.yaml").open("w") as f:
        yaml.safe_dump(Token2WavTask.default_config(dict(model_conf)), f)
    torch.save(model.state_dict(), out / "model.pth")
    return out


def _store(tiny_model: Path, prompt_wav: Path, out: Path, *extra: str) -> None:
    token2wav_store_prompt.main(
        [
            "--train_config", str(tiny_model / "config.yaml"),
            "--model_file", str(tiny_model / "model.pth"),
            "--prompt_wav", str(prompt_wav),
            "--out_dir", str(out),
            *extra,
        ]
    )  # fmt: skip


def test_store_prompt_cli_with_onnx(tiny_model, onnx_dir, tmp_path):
    wav = speechlike(2.5, FS, seed=3)
    soundfile.write(tmp_path / "prompt.wav", wav, FS, subtype="FLOAT")
    out = tmp_path / "with_prompt"
    _store(tiny_model, tmp_path / "prompt.wav", out, "--onnx_dir", str(onnx_dir))

    model, _ = Token2WavTask.build_model_from_file(out / "config.yaml", out / "model.pth")
    prompt = model.stored_prompt()
    # the reference: prompt at the mel rate, then resampled to 16 kHz for CAM++ / S3
    wav_16k = torchaudio.functional.resample(torch.from_numpy(wav)[None], FS, 16000)
    expected = expected_tokens(wav_16k)
    assert expected.shape[1] == wav_16k.shape[1] // 160 // STACK
    assert prompt.prompt_token.tolist() == expected.tolist()
    np.testing.assert_allclose(
        prompt.embedding.numpy(), expected_embedding(wav_16k), atol=1e-4
    )
    n_frames = model.mel(torch.from_numpy(wav)[None]).shape[2]
    assert prompt.prompt_feat.shape == (1, n_frames, 80)
    conf = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    assert conf["model_conf"]["prompt_num_tokens"] == expected.shape[1]


def test_store_prompt_cli_errors(tiny_model, onnx_dir, tmp_path):
    soundfile.write(tmp_path / "p.wav", speechlike(1.0, FS), FS, subtype="FLOAT")
    only_campplus = tmp_path / "only_campplus"
    only_campplus.mkdir()
    make_campplus(only_campplus / "campplus.onnx")
    with pytest.raises(FileNotFoundError, match="no ONNX file .*speech_tokenizer_v1.onnx"):
        _store(tiny_model, tmp_path / "p.wav", tmp_path / "o1", "--onnx_dir", str(only_campplus))
    with pytest.raises(FileNotFoundError, match="not a directory"):
        _store(tiny_model, tmp_path / "p.wav", tmp_path / "o2", "--onnx_dir", str(tmp_path / "nope"))
    # a 31 s prompt is too long for the S3 tokenizer (CosyVoice's 30 s limit)
    soundfile.write(tmp_path / "long.wav", np.zeros(31 * 16000, np.float32), 16000)
    with pytest.raises(ValueError, match="at most 30 s"):
        _store(tiny_model, tmp_path / "long.wav", tmp_path / "o3", "--onnx_dir", str(onnx_dir))
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o3").exists()
