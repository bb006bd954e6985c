"""A lean inference forward for Qwen2-style LLMs with a preallocated KV cache.

transformers' ``Qwen2Model.forward`` spends more time per decode step in Python (mask
builders, cache objects, output bookkeeping) than a small model spends computing: at the
tiny size it dominates the step. This forward keeps transformers' own modules (norms, the
q/k/v/o projections, the MLP, the rotary embedding and ``apply_rotary_pos_emb``) and
replaces only the per-step glue: one boolean mask, a KV cache written in place, and
``scaled_dot_product_attention`` over the filled part of the cache only. It is used for
inference (no gradients); other architectures fall back to transformers' forward.
"""

from dataclasses import dataclass
from typing import List, Optional

import torch
from torch.nn.functional import scaled_dot_product_attention
from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb


@dataclass
class LeanOutput:
    last_hidden_state: torch.Tensor


class LeanKVCache:
    """Keys/values of every layer for ``max_len`` positions, filled left to right."""

    def __init__(self, num_layers, batch, kv_heads, head_dim, max_len, dtype, device):
        shape = (batch, kv_heads, max_len, head_dim)
        self.keys: List[torch.Tensor] = [
            torch.empty(shape, dtype=dtype, device=device) for _ in range(num_layers)
        ]
        self.values = [torch.empty_like(k) for k in self.keys]
        self.length = 0
        self.max_len = max_len


def supports_lean_decoding(causal_lm) -> bool:
    """Qwen2 (and same-shaped) configs without sliding windows, plain Linear projections."""
    config = causal_lm.config
    if config.model_type != "qwen2" or getattr(config, "use_sliding_window", False):
        return False
    attn = causal_lm.model.layers[0].self_attn
    return all(type(getattr(attn, n)) is torch.nn.Linear for n in ("q_proj", "k_proj", "v_proj"))


def new_lean_cache(causal_lm, batch: int, max_len: int, dtype, device) -> LeanKVCache:
    config = causal_lm.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return LeanKVCache(
        config.num_hidden_layers, batch, config.num_key_value_heads, head_dim, max_len, dtype, device
    )


@torch.no_grad()
def lean_forward(
    causal_lm,
    inputs_embeds: torch.Tensor,
    attention_mask: Optional[torch.Tensor],
    position_ids: torch.Tensor,
    cache: LeanKVCache,
) -> LeanOutput:
    """Run ``T`` new positions through the body; returns the post-norm hidden states.

    Args:
        inputs_embeds: (B, T, H) the new positions.
        attention_mask: (B, cache.length + T), 1 on real positions, 0 on padding; None when
            nothing is padded.
        position_ids: (B, T) RoPE positions of the new positions.
        cache: filled up to ``cache.length``; extended by ``T``.
    """
    body = causal_lm.model
    batch, steps, _ = inputs_embeds.shape
    start, end = cache.length, cache.length + steps
    if end > cache.max_len:
        raise ValueError(f"KV cache of {cache.max_len} positions is full ({end} needed)")
    device = inputs_embeds.device
    keys_pos = torch.arange(end, device=device)
    query_pos = torch.arange(start, end, device=device)
    mask = (keys_pos[None, :] <= query_pos[:, None])[None, None]
    if attention_mask is not None:
        mask = mask & attention_mask[:, None, None, :end].bool()
        # A padding query attends to itself only, so that no row is fully masked (NaN).
        mask = mask | (keys_pos[None, :] == query_pos[:, None])[None, None]
    if steps == 1 and attention_mask is None:
        mask = None  # one query over all cached keys
    cos, sin = body.rotary_emb(inputs_embeds, position_ids)
    x = inputs_embeds
    for i, layer in enumerate(body.layers):
        attn = layer.self_attn
        h = layer.input_layernorm(x)
        q = attn.q_proj(h).view(batch, steps, -1, attn.head_dim).transpose(1, 2)
        k = attn.k_proj(h).view(batch, steps, -1, attn.head_dim).transpose(1, 2)
        v = attn.v_proj(h).view(batch, steps, -1, attn.head_dim).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        cache.keys[i][:, :, start:end] = k
        cache.values[i][:, :, start:end] = v
        out = scaled_dot_product_attention(
            q,
            cache.keys[i][:, :, :end],
            cache.values[i][:, :, :end],
            attn_mask=mask,
            enable_gqa=True,
        )
        x = x + attn.o_proj(out.transpose(1, 2).reshape(batch, steps, -1))
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    cache.length = end
    return LeanOutput(body.norm(x))
