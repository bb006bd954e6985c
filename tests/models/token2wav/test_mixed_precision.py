"""The flow estimator's fast paths against its float32 reference arithmetic."""

import copy

import pytest
import torch

from espnet2_echat.models.token2wav.estimator import ConditionalDecoder


def _estimator() -> ConditionalDecoder:
    torch.manual_seed(0)
    return ConditionalDecoder(
        in_channels=4 * 16,
        out_channels=16,
        channels=(64, 64),
        attention_head_dim=16,
        n_blocks=1,
        num_mid_blocks=2,
        num_heads=4,
    ).eval()


def _inputs(b: int = 2, t: int = 37):
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.randn(*s, generator=g)
    return r(b, 16, t), torch.ones(b, 1, t), r(b, 16, t), torch.rand(b, generator=g), r(b, 16), r(b, 16, t)


def _with_bias(est: ConditionalDecoder, x, mask, mu, t, spks, cond) -> torch.Tensor:
    """The reference's arithmetic: CosyVoice's additive key bias even without padding."""
    ref = copy.deepcopy(est)
    ref._key_bias = lambda m, dtype: ((1.0 - m.to(dtype)) * -1.0e10).unsqueeze(1)
    return ref(x, mask, mu, t, spks, cond)


@torch.no_grad()
def test_unpadded_mask_skips_the_bias_with_the_same_result():
    est = _estimator()
    args = _inputs()
    assert est._key_bias(args[1], torch.float32) is None
    torch.testing.assert_close(est(*args), _with_bias(est, *args), atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_padded_mask_still_masks():
    est = _estimator()
    x, mask, mu, t, spks, cond = _inputs(b=1, t=40)
    mask[:, :, 30:] = 0
    out = est(x, mask, mu, t, spks, cond)
    x2 = x.clone()
    x2[:, :, 30:] += 100.0  # padded frames must not change the valid ones
    torch.testing.assert_close(est(x2, mask, mu, t, spks, cond)[:, :, :30], out[:, :, :30])
    torch.testing.assert_close(out, _with_bias(est, x, mask, mu, t, spks, cond), atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_bf16_products_stay_close_to_float32():
    est = _estimator()
    args = _inputs()
    ref = est(*args)
    low = copy.deepcopy(est)
    low.set_matmul_dtype(torch.bfloat16)
    out = low(*args)
    assert out.dtype == torch.float32
    assert not torch.equal(out, ref)  # the bf16 path really ran
    rel = float((out - ref).abs().mean() / ref.abs().mean())
    assert rel < 2e-2, rel  # bf16 keeps ~3 significant digits per product
    norm = low.mid_blocks[0][1][0].norm1
    assert norm.weight.dtype == torch.float32  # norms (and residuals) stay float32
    assert low.mid_blocks[0][1][0].attn1.to_q.weight.dtype == torch.bfloat16


@pytest.mark.parametrize("padded", [False, True])
def test_bf16_attention_products_equal_sdpa_up_to_rounding(padded):
    """The CPU bfloat16 attention (two batched products and a softmax) against float64
    scaled_dot_product_attention, with and without CosyVoice's additive key bias."""
    from espnet2_echat.models.token2wav.estimator import attend

    g = torch.Generator().manual_seed(2)
    t = 300  # more than two query blocks, the last one short
    q, k, v = (torch.randn(2, 4, t, 16, generator=g) for _ in range(3))
    bias = None
    if padded:
        bias = torch.zeros(2, 1, 1, t)
        bias[1, ..., 241:] = -1.0e10
    ref = torch.nn.functional.scaled_dot_product_attention(
        q.double(), k.double(), v.double(),
        attn_mask=None if bias is None else bias.double())
    low = lambda t: None if t is None else t.bfloat16()
    out = attend(low(q), low(k), low(v), low(bias))
    assert out.dtype == torch.bfloat16
    err = (out.double() - ref).abs()
    assert float(err.max()) < 5e-2 and float(err.mean()) < 5e-3, (err.max(), err.mean())
    if padded:  # masked keys have no say
        k2 = k.clone()
        k2[1, :, 241:] += 50.0
        torch.testing.assert_close(attend(low(q), low(k2), low(v), low(bias)), out)


def test_bad_matmul_dtype(tmp_path):
    from espnet2_echat.inference.token2wav import Token2WavInference

    with pytest.raises(ValueError, match="matmul_dtype must be one of"):
        Token2WavInference(tmp_path / "c.yaml", tmp_path / "m.pth", matmul_dtype="fp8")


@torch.no_grad()
def test_onnx_estimator_equals_torch_and_refuses_padding():
    from espnet2_echat.models.token2wav.onnx_estimator import OnnxEstimator

    est = _estimator()
    onnx = OnnxEstimator(est, num_threads=1)
    for t in (37, 101):  # dynamic time axis (exported at 64 frames)
        args = _inputs(t=t)
        torch.testing.assert_close(onnx(*args), est(*args), atol=1e-4, rtol=1e-4)
    x, mask, mu, t, spks, cond = _inputs()
    mask[:, :, 30:] = 0
    with pytest.raises(ValueError, match="exported for unpadded input"):
        onnx(x, mask, mu, t, spks, cond)


@torch.no_grad()
def test_bf16_hift_convolutions_stay_close_to_float32():
    """set_conv_dtype: every decoder convolution in bfloat16 (weight norm folded), the F0
    predictor, the source and the iSTFT in float32; the waveform stays close."""
    from espnet2_echat.models.token2wav.hift import CastConv, HiFTGenerator

    def hift() -> HiFTGenerator:
        torch.manual_seed(0)
        return HiFTGenerator(base_channels=64, f0_predictor_conf={"in_channels": 80, "cond_channels": 64}).eval()

    ref, low = hift(), hift()
    low.set_conv_dtype(torch.bfloat16)
    mel = torch.randn(1, 80, 40, generator=torch.Generator().manual_seed(1))
    want = ref.inference(mel, generator=torch.Generator().manual_seed(0))[0]
    got = low.inference(mel, generator=torch.Generator().manual_seed(0))[0]
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert not torch.equal(got, want)  # the bf16 path really ran
    rel = float((got - want).abs().mean() / want.abs().mean())
    assert rel < 2e-2, rel
    convs = [m for m in low.modules() if isinstance(m, CastConv)]
    assert len(convs) == sum(isinstance(m, torch.nn.Conv1d | torch.nn.ConvTranspose1d)
                             for m in ref.modules() if not _in_f0_predictor(ref, m))
    assert all(c.conv.weight.dtype == torch.bfloat16 for c in convs)
    assert next(low.f0_predictor.parameters()).dtype == torch.float32


def _in_f0_predictor(hift, module) -> bool:
    return any(module is m for m in hift.f0_predictor.modules())


def test_bf16_token2wav_inference_converts_the_vocoder_too(tmp_path):
    """Token2WavInference(matmul_dtype="bfloat16") runs HiFT's convolutions in bfloat16."""
    import yaml

    from espnet2_echat.inference.token2wav import Token2WavInference
    from espnet2_echat.models.token2wav.espnet_model import ESPnetToken2WavModel
    from espnet2_echat.models.token2wav.hift import CastConv
    from espnet2_echat.models.token2wav.speaker_prompt import SpeakerPrompt
    from espnet2_echat.tasks.token2wav import Token2WavTask

    conf = yaml.safe_load(open("conf/token2wav/train_tiny.yaml"))["model_conf"]
    conf.update(vocoder="hift", hift_conf=dict(base_channels=32, f0_predictor_conf={"in_channels": 80, "cond_channels": 32}))
    torch.manual_seed(0)
    model = ESPnetToken2WavModel(**conf)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(Token2WavTask.default_config(conf)))
    torch.save(model.state_dict(), tmp_path / "model.pth")
    prompt = SpeakerPrompt(torch.zeros(1, 0, dtype=torch.long), torch.zeros(1, 0, model.flow.output_size),
                           torch.randn(1, model.flow.spk_embed_dim))
    files = (tmp_path / "config.yaml", tmp_path / "model.pth")
    t2w = Token2WavInference(*files, matmul_dtype="bfloat16", prompt=prompt)
    assert any(isinstance(m, CastConv) for m in t2w.model.hift.modules())
    t2w = Token2WavInference(*files, prompt=prompt)
    assert not any(isinstance(m, CastConv) for m in t2w.model.hift.modules())


def test_bf16_attention_with_a_per_query_bias():
    """A (T, T) bias (causal here) is sliced with its query block."""
    from espnet2_echat.models.token2wav.estimator import attend

    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 2, 200, 8, generator=g) for _ in range(3))
    causal = torch.full((200, 200), -1.0e10).triu(1)[None, None]
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    out = attend(q.bfloat16(), k.bfloat16(), v.bfloat16(), causal.bfloat16()).float()
    assert float((out - ref).abs().max()) < 5e-2
