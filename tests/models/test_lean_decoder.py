"""The lean decode forward equals transformers' Qwen2 forward (values computed by transformers)."""

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from espnet2_echat.models.lean_decoder import (
    decode_weights,
    lean_forward,
    new_lean_cache,
    supports_lean_decoding,
)


def _qwen2(seed=0, **overrides):
    torch.manual_seed(seed)
    sizes = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4)
    config = Qwen2Config(
        vocab_size=97, num_key_value_heads=2, max_position_embeddings=128,
        tie_word_embeddings=True, **{**sizes, **overrides},
    )
    model = Qwen2ForCausalLM(config).eval()
    for p in model.parameters():  # q/k/v biases and norm weights away from their init
        p.data.normal_(0, 0.2)
    return model


def _reference(model, embeds, mask, positions):
    with torch.no_grad():
        return model.model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions
        ).last_hidden_state


# "split": weights large enough to be split into column blocks (split_linear)
@pytest.mark.parametrize("sizes", [{}, dict(hidden_size=512, intermediate_size=1024,
                                            num_hidden_layers=2, num_attention_heads=8)])
def test_prefill_and_steps_equal_transformers_with_left_padding(sizes, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    model = _qwen2(**sizes)
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
