"""token2wav vs the reference's golden outputs (../shared/fixtures/token2wav_tiny).

Tolerances from the fixture README: mel and flow tensors 1e-4 absolute, F0 1e-4 relative,
HiFT decode from the injected excitation 1e-4, end-to-end waveform 1e-3. The prompt's log-mel
(values down to log(1e-5) = -11.5) also gets the README's rtol 1e-4: float32 FFTs of torch
builds differ by up to 1.5e-4 there (golden set A, torch 2.13 vs 2.11).
"""

from pathlib import Path

import pytest
import soundfile
import torch

from espnet2_echat.convert.cosyvoice import convert_cosyvoice
from espnet2_echat.models.token2wav.speaker_prompt import SpeakerPrompt
from espnet2_echat.tasks.token2wav import Token2WavTask
from tests.helpers import reference_fixtures_dir

pytestmark = pytest.mark.reference


def _golden_cases():
    """The golden set's cases (``expected/<case>/nonstream.pt``) and those it also streamed
    (``stream.pt``), read from its own folders; an absent set gives a placeholder (skipped)."""
    root = reference_fixtures_dir() / "token2wav_tiny" / "expected"
    cases = sorted(p.parent.name for p in root.glob("*/nonstream.pt")) if root.is_dir() else []
    streamed = [c for c in cases if (root / c / "stream.pt").is_file()]
    return cases or ["case_0"], streamed or ["case_0"]


CASES, STREAM_CASES = _golden_cases()
FLOW_ATOL = 1e-4
FLOW_RTOL = 1e-4
WAV_ATOL = 1e-3


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    assert tuple(a.shape) == tuple(
        b.shape
    ), f"shape {tuple(a.shape)} != {tuple(b.shape)}"
    return float((a.float() - b.float()).abs().max())


@pytest.fixture(scope="module")
def model(token2wav_tiny_dir: Path, tmp_path_factory):
    out = tmp_path_factory.mktemp("t2w_converted")
    config, weights = convert_cosyvoice(token2wav_tiny_dir / "CosyVoice-300M-25Hz", out)
    model, _ = Token2WavTask.build_model_from_file(config, weights)
    return model.eval()


def _load(token2wav_tiny_dir: Path, case: str, kind: str = "nonstream"):
    inputs = torch.load(
        token2wav_tiny_dir / "inputs" / case / "inputs.pt", weights_only=True
    )
    expected = torch.load(
        token2wav_tiny_dir / "expected" / case / f"{kind}.pt", weights_only=True
    )
    return inputs, expected


def _prompt(inputs) -> SpeakerPrompt:
    return SpeakerPrompt(
        inputs["prompt_token"].long(), inputs["prompt_feat"], inputs["embedding"]
    )


@pytest.mark.parametrize("case", CASES)
def test_prompt_mel(model, token2wav_tiny_dir, case):
    inputs, _ = _load(token2wav_tiny_dir, case)
    wav, fs = soundfile.read(
        token2wav_tiny_dir / "inputs" / case / "prompt.wav", dtype="float32"
    )
    assert fs == 22050
    prompt = model.prompt_from_wav(
        torch.from_numpy(wav), fs, prompt_token=inputs["prompt_token"]
    )
    feat = prompt.prompt_feat
    assert torch.allclose(feat, inputs["prompt_feat"], atol=FLOW_ATOL, rtol=FLOW_RTOL), _max_abs(
        feat, inputs["prompt_feat"]
    )


@pytest.mark.parametrize("case", CASES)
def test_flow_tensors(model, token2wav_tiny_dir, case):
    inputs, exp = _load(token2wav_tiny_dir, case)
    flow = model.flow
    with torch.no_grad():
        assert (
            _max_abs(flow.project_speaker(inputs["embedding"]), exp["spk_proj"])
            <= FLOW_ATOL
        )
        tokens = torch.cat(
            [inputs["prompt_token"].long(), inputs["speech_token"]], dim=1
        )
        h = flow.encode(tokens, torch.tensor([tokens.shape[1]]))
        assert _max_abs(h, exp["encoder_proj_out"]) <= FLOW_ATOL
        c = flow.conditions(
            inputs["speech_token"],
            inputs["prompt_token"],
            inputs["prompt_feat"],
            inputs["embedding"],
        )
        assert (c.mel_len1, c.mel_len2) == (int(exp["mel_len1"]), int(exp["mel_len2"]))
        assert _max_abs(c.mu, exp["mu"]) <= FLOW_ATOL
        assert _max_abs(c.cond, exp["cond"]) <= FLOW_ATOL
        assert _max_abs(c.mask, exp["mask"]) == 0.0
        trace = {}
        mel = flow.inference(
            inputs["speech_token"],
            inputs["prompt_token"],
            inputs["prompt_feat"],
            inputs["embedding"],
            noise=exp["noise_z"],
            trace=trace,
        )
    assert _max_abs(torch.cat(trace["t"]), exp["t_steps"]) == 0.0
    assert _max_abs(trace["v"][0], exp["estimator_step0_out"]) <= FLOW_ATOL
    assert (
        _max_abs(torch.stack([x[0] for x in trace["x"]]), exp["euler_trajectory"])
        <= FLOW_ATOL
    )
    assert _max_abs(mel, exp["flow_mel"]) <= FLOW_ATOL


@pytest.mark.parametrize("case", CASES)
def test_hift(model, token2wav_tiny_dir, case):
    _, exp = _load(token2wav_tiny_dir, case)
    hift = model.hift
    with torch.no_grad():
        f0 = hift.f0_predictor(exp["flow_mel"])
        assert (
            float(
                (
                    (f0 - exp["hift_f0"]).abs() / exp["hift_f0"].abs().clamp(min=1.0)
                ).max()
            )
            <= 1e-4
        )
        speech, _ = hift.inference(exp["flow_mel"], source=exp["hift_source"])
        assert _max_abs(speech, exp["tts_speech"]) <= FLOW_ATOL
        generator = torch.Generator()
        generator.set_state(exp["rng_state_before_hift"])
        speech, source = hift.inference(exp["flow_mel"], generator=generator)
    assert _max_abs(source, exp["hift_source"]) <= FLOW_ATOL
    assert _max_abs(speech, exp["tts_speech"]) <= WAV_ATOL


@pytest.mark.parametrize("case", CASES)
def test_offline_end_to_end_seeded(model, token2wav_tiny_dir, case):
    """A generator seeded like the reference's global RNG reproduces its waveform."""
    inputs, exp = _load(token2wav_tiny_dir, case)
    generator = torch.Generator().manual_seed(int(exp["noise_seed"]))
    speech = model.synthesize(
        inputs["speech_token"], _prompt(inputs), generator=generator
    )
    assert _max_abs(speech, exp["tts_speech"]) <= WAV_ATOL
    wav, fs = soundfile.read(
        token2wav_tiny_dir / "expected" / case / "nonstream.wav", dtype="float32"
    )
    assert fs == model.sample_rate and speech.shape[1] == len(wav)


@pytest.mark.parametrize("case", STREAM_CASES)
def test_streaming_reference_compat(model, token2wav_tiny_dir, case):
    inputs, exp = _load(token2wav_tiny_dir, case, "stream")
    chunked = model.chunked(reference_compat=True)
    slices = chunked.split(inputs["speech_token"].shape[1])
    assert len(slices) == int(exp["n_chunks"])
    state = chunked.new_state()
    generator = torch.Generator().manual_seed(int(exp["noise_seed"]))
    for k, sl in enumerate(slices):
        token = inputs["speech_token"][:, sl]
        assert torch.equal(token, exp[f"chunk{k}.token"])
        chunked.chunk(
            state,
            token,
            inputs["prompt_token"].long(),
            inputs["prompt_feat"],
            inputs["embedding"],
            finalize=bool(exp[f"chunk{k}.finalize"]),
            generator=generator,
            keep_trace=True,
        )
        trace = state.trace[k]
        for key in (
            "mu_before_cache",
            "noise_z_used",
            "flow_cache_out",
            "flow_mel",
            "hift_in_mel",
        ):
            assert _max_abs(trace[key], exp[f"chunk{k}.{key}"]) <= FLOW_ATOL, key
        assert _max_abs(trace["speech_out"], exp[f"chunk{k}.speech_out"]) <= WAV_ATOL
    # The incremental API (tokens arriving 7 at a time) yields the same stream.
    generator = torch.Generator().manual_seed(int(exp["noise_seed"]))
    tokens = inputs["speech_token"][0].tolist()
    pieces = [tokens[i : i + 7] for i in range(0, len(tokens), 7)]
    chunks = list(
        model.synthesize_stream(
            pieces, _prompt(inputs), generator=generator, reference_compat=True
        )
    )
    assert [c.shape[1] for c in chunks] == [
        exp[f"chunk{k}.speech_out"].shape[1] for k in range(int(exp["n_chunks"]))
    ]
    assert _max_abs(torch.cat(chunks, dim=1), exp["tts_speech"]) <= WAV_ATOL


@pytest.mark.parametrize("case", STREAM_CASES)
def test_streaming_fixed_cache_aligns_overlap(model, token2wav_tiny_dir, case):
    """Default mode: chunk k+1's first frames reuse chunk k's frames of the SAME tokens."""
    inputs, exp = _load(token2wav_tiny_dir, case, "stream")
    chunked = model.chunked()
    assert chunked.flow_cache_frames == chunked.mel_overlap_len == 68
    state = chunked.new_state()
    generator = torch.Generator().manual_seed(int(exp["noise_seed"]))
    slices = chunked.split(inputs["speech_token"].shape[1])
    assert len(slices) >= 2, f"{case}: streamed in one chunk; nothing overlaps"
    for k, sl in enumerate(slices):
        chunked.chunk(
            state,
            inputs["speech_token"][:, sl],
            inputs["prompt_token"].long(),
            inputs["prompt_feat"],
            inputs["embedding"],
            finalize=k == len(slices) - 1,
            generator=generator,
            keep_trace=True,
        )
    n1 = int(exp["chunk0.mel_len1"])
    first, second = state.trace[0], state.trace[1]
    # Chunk 0's last 68 frames (tokens 50..69) become chunk 1's first 68 generated frames.
    assert torch.equal(
        second["noise_z_used"][:, :, n1 : n1 + 68], first["noise_z_used"][:, :, -68:]
    )
    # In reference_compat only 34 frames are carried, from tokens ~60..69.
    assert not torch.equal(
        exp["chunk1.noise_z_used"][:, :, n1 : n1 + 68],
        exp["chunk0.noise_z_used"][:, :, -68:],
    )
