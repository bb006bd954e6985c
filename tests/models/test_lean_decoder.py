"""The lean decode forward equals transformers' forward, per Llama family (Qwen2 with q/k/v
biases, Llama without, with biases everywhere, tied and untied embeddings, GQA): values and
greedy ids computed by transformers itself."""

import logging

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from espnet2_echat.inference.decoder import build_plan, generate
from espnet2_echat.inference.settings import DecodingOptions
from espnet2_echat.models import lean_decoder
from espnet2_echat.models.lean_decoder import (
    decode_weights,
    lean_decoding_blocker,
    lean_forward,
    new_lean_cache,
    supports_lean_decoding,
)
from espnet2_echat.models.packed_linear import packing_available
from espnet2_echat.models.speech_llm import SpeechLLM

FAMILIES = {
    # Qwen2: q/k/v biased, o/MLP not; tied embeddings (Qwen2.5-3B)
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, dict(tie_word_embeddings=True)),
    # Llama / SmolLM2: no bias anywhere, untied and tied
    "llama": (LlamaConfig, LlamaForCausalLM, dict(tie_word_embeddings=False)),
    "llama_tied": (LlamaConfig, LlamaForCausalLM, dict(tie_word_embeddings=True)),
    # Llama with attention_bias and mlp_bias: every projection biased, o and MLP included
    "llama_biased": (
        LlamaConfig, LlamaForCausalLM, dict(attention_bias=True, mlp_bias=True),
    ),
}


def _model(family="qwen2", seed=0, **overrides):
    config_cls, model_cls, extra = FAMILIES[family]
    torch.manual_seed(seed)
    sizes = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4)
    config = config_cls(
        vocab_size=97, num_key_value_heads=2, max_position_embeddings=128,
        **{**sizes, **extra, **overrides},
    )
    model = model_cls(config).eval()
    for p in model.parameters():  # biases and norm weights away from their init
        p.data.normal_(0, 0.2)
    return model


def _qwen2(seed=0, **overrides):
    return _model("qwen2", seed, **overrides)


def _reference(model, embeds, mask, positions):
    with torch.no_grad():
        return model.model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions
        ).last_hidden_state


# "split": weights large enough to be split into column blocks (split_linear)
@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("sizes", [{}, dict(hidden_size=512, intermediate_size=1024,
                                            num_hidden_layers=2, num_attention_heads=8)])
# packed: the steps of 3 rows read the body through oneDNN-packed copies (the CPU default)
@pytest.mark.parametrize("packed", [False, True])
def test_prefill_and_steps_equal_transformers_with_left_padding(family, sizes, packed, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(lean_decoder, "PACK_BATCH_STEPS", packed)
    model = _model(family, **sizes)
    hidden = model.config.hidden_size
    assert supports_lean_decoding(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch, prompt, steps = 3, 7, 5
    lengths = torch.tensor([7, 4, 1])
    embeds = torch.randn(batch, prompt + steps, hidden)
    mask = torch.zeros(batch, prompt + steps, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, prompt - n :] = 1  # left padding
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    expected = _reference(model, embeds, mask, positions)

    cache = new_lean_cache(model, batch, prompt + steps, torch.float32, "cpu")
    assert cache.parts == 2
    out = [lean_forward(model, embeds[:, :prompt], mask[:, :prompt], positions[:, :prompt], cache)]
    for t in range(prompt, prompt + steps):
        sl = slice(t, t + 1)
        out.append(lean_forward(model, embeds[:, sl], mask[:, : t + 1], positions[:, sl], cache))
    ours = torch.cat([o.last_hidden_state for o in out], dim=1)
    real = mask.bool()  # padding positions are arbitrary in both
    assert (ours[real] - expected[real]).abs().max() < 1e-5
    used_packed = any(w.packed for w in decode_weights(model))
    assert used_packed == (packed and packing_available())
    # re-laying the weights kept every value and every Parameter object
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not model.model.layers[0].self_attn.q_proj.weight.is_contiguous()


def test_unpadded_steps_without_mask_equal_transformers():
    model = _qwen2(seed=1)
    embeds = torch.randn(1, 9, 64)
    positions = torch.arange(9)[None]
    expected = _reference(model, embeds, None, positions)
    cache = new_lean_cache(model, 1, 9, torch.float32, "cpu")
    first = lean_forward(model, embeds[:, :4], None, positions[:, :4], cache).last_hidden_state
    rest = [
        lean_forward(model, embeds[:, t : t + 1], None, positions[:, t : t + 1], cache)
        for t in range(4, 9)
    ]
    ours = torch.cat([first] + [r.last_hidden_state for r in rest], dim=1)
    assert (ours - expected).abs().max() < 1e-5


def test_new_weights_loaded_or_replaced_are_seen():
    model = _qwen2(seed=2)
    other = _qwen2(seed=3)
    embeds, positions = torch.randn(1, 5, 64), torch.arange(5)[None]
    decode_weights(model)
    model.load_state_dict(other.state_dict())  # in place: the decode layout follows
    cache = new_lean_cache(model, 1, 5, torch.float32, "cpu")
    ours = lean_forward(model, embeds, None, positions, cache).last_hidden_state
    assert (ours - _reference(other, embeds, None, positions)).abs().max() < 1e-5
    proj = model.model.layers[1].mlp.down_proj
    proj.weight.data = torch.zeros_like(proj.weight)  # replaced: the layer is re-laid
    cache = new_lean_cache(model, 1, 5, torch.float32, "cpu")
    ours = lean_forward(model, embeds, None, positions, cache).last_hidden_state
    assert (ours - _reference(model, embeds, None, positions)).abs().max() < 1e-5


def test_cache_overflow_is_a_clear_error():
    model = _qwen2()
    cache = new_lean_cache(model, 1, 3, torch.float32, "cpu")
    with pytest.raises(ValueError, match="KV cache of 3 positions is full"):
        lean_forward(model, torch.randn(1, 4, 64), None, torch.arange(4)[None], cache)


def test_other_rope_types_fall_back():
    model = _qwen2(rope_scaling={"rope_type": "dynamic", "factor": 2.0})
    assert not supports_lean_decoding(model)
    assert "RoPE type 'dynamic'" in lean_decoding_blocker(model)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("column_major", [False, True])
def test_greedy_ids_equal_transformers_generate(family, column_major):
    """The decoder's lean text decode (left-padded batch) picks transformers' greedy ids,
    also in the CPU decode layout, where batch steps read the text head through a copy
    packed for oneDNN (``packed_linear``)."""
    causal_lm = _model(family, seed=4)
    llm = SpeechLLM(causal_lm, speech_token_num=9).eval()
    batch, prompt, n = 2, 6, 12
    torch.manual_seed(5)
    embeds = torch.randn(batch, prompt, 64)
    mask = torch.ones(batch, prompt, dtype=torch.long)
    mask[1, :2] = 0  # left padding
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        expected = causal_lm.generate(
            inputs_embeds=embeds, attention_mask=mask, max_new_tokens=n, do_sample=False,
            pad_token_id=0, eos_token_id=None,
        )
    options = DecodingOptions(do_sample=False, max_new_tokens=n, max_new_speech_tokens=0)
    plan = build_plan("text", options, llm.ids)
    if column_major:
        llm.use_column_major_weights()
    with torch.no_grad():
        assert supports_lean_decoding(causal_lm)
        ours = generate(llm, embeds, mask, positions, plan)
    assert [row[:n] for row in ours.ids] == expected.tolist()
    if column_major and packing_available():
        assert llm.packed_head._packed is not None  # the batch steps used the packed copy


def test_unsupported_lm_falls_back_with_a_warning(caplog):
    """A dynamic-RoPE LLM decodes through transformers (same ids) and says so once."""
    causal_lm = _model("llama", seed=6, rope_scaling={"rope_type": "dynamic", "factor": 2.0})
    llm = SpeechLLM(causal_lm, speech_token_num=9).eval()
    embeds = torch.randn(1, 5, 64)
    mask, positions = torch.ones(1, 5, dtype=torch.long), torch.arange(5)[None]
    options = DecodingOptions(do_sample=False, max_new_tokens=6, max_new_speech_tokens=0)
    plan = build_plan("text", options, llm.ids)
    with caplog.at_level(logging.WARNING), torch.no_grad():
        first = generate(llm, embeds, mask, positions, plan)
        second = generate(llm, embeds, mask, positions, plan)
        expected = causal_lm.generate(
            inputs_embeds=embeds, attention_mask=mask, max_new_tokens=6, do_sample=False,
            pad_token_id=0, eos_token_id=None,
        )
    warnings = [r.getMessage() for r in caplog.records if "not the lean decoder" in r.getMessage()]
    assert warnings == [
        "LlamaForCausalLM decodes with transformers' forward, not the lean decoder: "
        "RoPE type 'dynamic' is not one of ('default', 'linear', 'llama3')"
    ]
    assert first.ids == second.ids and [r[:6] for r in first.ids] == expected.tolist()
