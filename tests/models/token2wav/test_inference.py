"""token2wav inference API and CLI on a tiny model (no golden outputs needed)."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml

from espnet2_echat.bin import token2wav_inference
from espnet2_echat.inference.token2wav import Token2WavInference, read_speech_token_file
from espnet2_echat.tasks.token2wav import Token2WavTask
from tests.helpers import REPO_ROOT
from tests.models.token2wav.toy_corpus import tone_wav

CONF = REPO_ROOT / "conf" / "token2wav" / "train_tiny.yaml"
PROMPT_TOKENS = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 0, 0, 1, 2, 3, 4]


def _save(model, model_conf: dict, out: Path) -> Path:
    out.mkdir()
    with (out / "config.yaml").open("w") as f:
        yaml.safe_dump(Token2WavTask.default_config(model_conf), f)
    torch.save(model.state_dict(), out / "model.pth")
    return out


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict:
    """A randomly initialised tiny token2wav (Griffin-Lim stand-in), saved without and
    with a stored prompt, and the prompt's wav and token file."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("t2w_tiny")
    model_conf = yaml.safe_load(CONF.read_text(encoding="utf-8"))["model_conf"]
    args = Token2WavTask.get_parser().parse_args(["--model_conf", str(model_conf)])
    model = Token2WavTask.build_model(args)
    bare = _save(model, dict(model_conf), root / "bare")
    wav = tone_wav(PROMPT_TOKENS, 22050)
    soundfile.write(root / "prompt.wav", wav, 22050, subtype="FLOAT")
    (root / "prompt_tokens").write_text("p " + " ".join(map(str, PROMPT_TOKENS)) + "\n")
    prompt = model.prompt_from_wav(
        torch.from_numpy(wav), 22050, prompt_token=torch.tensor(PROMPT_TOKENS)
    )
    model.store_prompt(prompt)
    model_conf.update(
        prompt_num_frames=prompt.prompt_feat.shape[1],
        prompt_num_tokens=len(PROMPT_TOKENS),
    )
    return {
        "bare": bare,
        "prompted": _save(model, model_conf, root / "prompted"),
        "root": root,
    }


@pytest.fixture(scope="module")
def model_dir(dirs) -> Path:
    return dirs["prompted"]


def test_prompt_given_at_inference(dirs):
    with pytest.raises(ValueError, match="no stored speaker prompt"):
        Token2WavInference.from_pretrained(dirs["bare"])
    from_files = Token2WavInference.from_pretrained(
        dirs["bare"],
        n_timesteps=2,
        prompt_wav=dirs["root"] / "prompt.wav",
        prompt_speech_token=dirs["root"] / "prompt_tokens",
    )
    stored = Token2WavInference.from_pretrained(dirs["prompted"], n_timesteps=2)
    for name in ("prompt_token", "prompt_feat", "embedding"):
        a, b = getattr(from_files.prompt, name), getattr(stored.prompt, name)
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name


@pytest.fixture(scope="module")
def t2w(model_dir) -> Token2WavInference:
    return Token2WavInference.from_pretrained(model_dir, n_timesteps=4)


def test_offline_length_and_reproducibility(t2w):
    tokens = list(range(10, 60))
    wav = t2w(tokens)
    assert wav.dtype == np.float32
    assert len(wav) == int(len(tokens) / 25 * 22050 / 256) * 256
    assert np.array_equal(wav, t2w(tokens))  # the noise generator is re-seeded per call
    t2w.seed = 1
    try:
        assert not np.array_equal(wav, t2w(tokens))
    finally:
        t2w.seed = 0


def test_streaming_first_chunk_and_length(t2w):
    tokens = list(range(100, 220))  # 120 tokens: calls on [0,70) [50,120) [100,120)
    arrivals, chunks = [], []

    def one_by_one():
        for i, tok in enumerate(tokens):
            arrivals.append(i + 1)
            yield [tok]

    for chunk in t2w.stream(one_by_one()):
        chunks.append((arrivals[-1], len(chunk)))
    assert (
        chunks[0][0] == 70
    )  # first audio as soon as hop (50) + overlap (20) tokens exist
    assert [arrived for arrived, _ in chunks] == [70, 120, 120]
    total = sum(n for _, n in chunks)
    offline = len(t2w(tokens))
    assert abs(total - offline) < 2 * 256 * 4  # streamed audio covers the same duration


def test_bad_inputs(t2w, model_dir):
    with pytest.raises(ValueError, match=r"must lie in \[0, 4095\]"):
        t2w([1, 2, 4096])
    with pytest.raises(ValueError, match=r"must lie in \[0, 4095\]"):
        t2w([-1, 2])
    with pytest.raises(ValueError, match="empty speech-token list"):
        t2w([])
    with pytest.raises(ValueError, match="must be sampled at 22050 Hz"):
        t2w.model.prompt_from_wav(torch.zeros(16000), 16000)
    bad = model_dir / "bad_speech_token"
    bad.write_text("u1 1 2 3\nu2 4 x 6\n")
    with pytest.raises(
        ValueError,
        match=r"bad_speech_token:2: utterance u2: speech tokens must be integers",
    ):
        list(read_speech_token_file(bad))


def test_inference_cli(model_dir, tmp_path):
    utts = {"uttA": list(range(30)), "uttB": list(range(5, 17))}
    (tmp_path / "speech_token").write_text(
        "".join(f"{u} {' '.join(map(str, t))}\n" for u, t in utts.items())
    )
    with (tmp_path / "wav.scp").open("w") as scp:
        for u, t in utts.items():
            soundfile.write(tmp_path / f"{u}.wav", tone_wav(t), 16000)
            scp.write(f"{u} {tmp_path / u}.wav\n")
    out = tmp_path / "synth"
    token2wav_inference.main(
        ["--speech_token", str(tmp_path / "speech_token"), "--output_dir", str(out)]
        + ["--train_config", str(model_dir / "config.yaml")]
        + ["--model_file", str(model_dir / "model.pth"), "--n_timesteps", "2"]
        + ["--reference_wav_scp", str(tmp_path / "wav.scp")]
    )
    lines = (out / "wav.scp").read_text().splitlines()
    assert [ln.split()[0] for ln in lines] == ["uttA", "uttB"]
    wav, fs = soundfile.read(lines[0].split()[1])
    assert fs == 22050 and len(wav) == int(30 / 25 * 22050 / 256) * 256
    distances = dict(
        ln.split() for ln in (out / "mel_distance").read_text().splitlines()
    )
    assert set(distances) == set(utts) and all(float(d) > 0 for d in distances.values())
    summary = json.loads((out / "mel_distance.json").read_text())
    assert summary["num_utts"] == 2
    assert summary["mean"] == pytest.approx(
        np.mean([float(d) for d in distances.values()]), abs=1e-3
    )


def test_bf16_matmuls_option(model_dir, t2w):
    low = Token2WavInference.from_pretrained(model_dir, n_timesteps=4, matmul_dtype="bfloat16")
    blocks = [m for m in low.model.flow.decoder.estimator.modules() if hasattr(m, "matmul_dtype")]
    assert blocks and all(b.matmul_dtype == torch.bfloat16 for b in blocks)
    tokens = list(range(10, 60))
    wav, ref = low(tokens), t2w(tokens)
    assert wav.shape == ref.shape and not np.array_equal(wav, ref)


def test_short_first_chunk(model_dir, t2w):
    short = Token2WavInference.from_pretrained(model_dir, n_timesteps=4, first_token_hop_len=10)
    tokens = list(range(100, 220))  # 120 tokens: calls on [0,30) [10,80) [60,120)
    arrivals, chunks = [], []

    def one_by_one():
        for i, tok in enumerate(tokens):
            arrivals.append(i + 1)
            yield [tok]

    for chunk in short.stream(one_by_one()):
        chunks.append((arrivals[-1], len(chunk)))
    assert [arrived for arrived, _ in chunks] == [30, 80, 120]
    assert chunks[0][1] < chunks[1][1]  # the first chunk plays ~10 tokens' worth
    assert abs(sum(n for _, n in chunks) - len(t2w(tokens))) < 2 * 256 * 4
    chunked = short.model.chunked(first_token_hop_len=10)
    assert chunked.split(120) == [slice(0, 30), slice(10, 80), slice(60, 120)]
    with pytest.raises(ValueError, match="first_token_hop_len=1 leaves"):
        short.model.chunked(first_token_hop_len=1)


def test_onnx_estimator_agrees_with_torch(t2w, model_dir):
    """``estimator_backend='onnx'``: the same mel as the torch estimator within the golden
    tolerance (1e-4; the stand-in Griffin-Lim vocoder would amplify round-off, so the flow's
    output is compared), on a length other than the export's example."""
    onnx = Token2WavInference.from_pretrained(
        model_dir, n_timesteps=4, estimator_backend="onnx"
    )
    assert type(onnx.model.flow.decoder.estimator).__name__ == "OnnxEstimator"
    tokens = torch.tensor([list(range(40, 133))])
    p = t2w.prompt
    mels = [
        m.model.flow.inference(
            tokens, p.prompt_token, p.prompt_feat, p.embedding,
            generator=torch.Generator().manual_seed(0), n_timesteps=4,
        )
        for m in (onnx, t2w)
    ]
    assert mels[0].shape == mels[1].shape
    torch.testing.assert_close(mels[0], mels[1], atol=1e-4, rtol=0)
    assert len(onnx(tokens[0].tolist())) == len(t2w(tokens[0].tolist()))
    with pytest.raises(ValueError, match="estimator_backend must be one of"):
        Token2WavInference.from_pretrained(model_dir, estimator_backend="tensorrt")
    with pytest.raises(ValueError, match="runs the float32 estimator on CPU"):
        Token2WavInference.from_pretrained(
            model_dir, estimator_backend="onnx", matmul_dtype="bfloat16"
        )


def test_compiled_estimator_agrees_with_eager(t2w, model_dir):
    """``estimator_backend='compiled'``: torch.compile with symbolic lengths gives the eager
    mel within round-off on two lengths (one compiled program)."""
    compiled = Token2WavInference.from_pretrained(
        model_dir, n_timesteps=2, estimator_backend="compiled"
    )
    assert type(compiled.model.flow.decoder.estimator).__name__ == "OptimizedModule"
    p = t2w.prompt
    for length in (41, 67):
        tokens = torch.tensor([list(range(3, 3 + length))])
        mels = [
            m.model.flow.inference(
                tokens, p.prompt_token, p.prompt_feat, p.embedding,
                generator=torch.Generator().manual_seed(0), n_timesteps=2,
            )
            for m in (compiled, t2w)
        ]
        torch.testing.assert_close(mels[0], mels[1], atol=1e-4, rtol=1e-4)
