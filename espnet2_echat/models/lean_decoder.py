"""A lean inference forward for Llama-family LLMs (Qwen2, Llama, SmolLM2, ...) with a
preallocated KV cache.

transformers' ``Qwen2Model.forward`` / ``LlamaModel.forward`` spend more time per decode step in Python (mask
builders, cache objects, output bookkeeping, about 25 small ops per layer) than a small
model spends computing: at the tiny size it dominates the step. This forward computes the
same function with fewer, larger ops:

* the q/k/v projections run as one matrix product, and so do gate/up (the weights are
  re-laid once into fused, transposed buffers; the modules' parameters become views of
  them, so nothing is duplicated and training code still sees ordinary Linear weights);
* RoPE is applied to q and k together, with cos/sin looked up in a table computed once per
  cache by the model's own rotary embedding;
* residual additions are fused into the output projections (``addmm``);
* the KV cache is written in place and ``scaled_dot_product_attention`` runs over the
  filled part only.

The families share one decoder layer: pre-RMSNorm, q/k/v projections (biased in Qwen2,
unbiased in Llama unless ``attention_bias``), grouped-query attention, RoPE, a gated MLP; tied
or untied embeddings do not matter here (the heads live outside the body). It is used for
inference (no gradients); any other architecture falls back to transformers' forward with a
warning naming the reason (:func:`lean_decoding_blocker`). Equality with transformers' forward,
per family, is tested in ``tests/models/test_lean_decoder.py``.
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import nn
from torch.nn.functional import rms_norm, scaled_dot_product_attention

from espnet2_echat.models.packed_linear import PACK_ROWS, PackedWeight, packing_available
from espnet2_echat.models.split_linear import split_addmm

# Steps of 2..16 rows (a batch decode step) read the body's weights through copies packed once
# for oneDNN (``packed_linear``): on the 2-core AMD EPYC VM each of the small size's products
# took 0.55-0.75x the time of the column-block layout at 8 rows (benchmarks/README.md,
# "Batch 8 by layout"). False: every step through ``split_addmm`` (the benchmark's baseline).
PACK_BATCH_STEPS = True


@dataclass
class LeanOutput:
    last_hidden_state: torch.Tensor


@dataclass
class LayerWeights:
    """One decoder layer's weights in the decode layout (transposed: (in, out))."""

    qkv: torch.Tensor  # (H, q + k + v)
    qkv_bias: Optional[torch.Tensor]
    o: torch.Tensor  # (q, H)
    gate_up: torch.Tensor  # (H, 2 I)
    down: torch.Tensor  # (I, H)
    o_bias: Optional[torch.Tensor] = None  # Llama with attention_bias / mlp_bias only
    gate_up_bias: Optional[torch.Tensor] = None
    down_bias: Optional[torch.Tensor] = None
    # oneDNN-packed copies for batch steps, by weight name, made at the first such step
    packed: Dict[str, PackedWeight] = field(default_factory=dict)

    def product(self, name: str, add: Optional[torch.Tensor], x: torch.Tensor, parts: int):
        """``add + x @ weight`` for the weight called ``name``, in the layout for ``x``'s rows:
        a copy packed for oneDNN for 2..16 float32 rows on CPU, column blocks otherwise."""
        weight = getattr(self, name)
        if _packs(x):
            packed = self.packed.setdefault(name, PackedWeight())
            y = packed.linear(x, weight.t())
            return y if add is None else y + add
        return split_addmm(add, x, weight, parts)


def _packs(x: torch.Tensor) -> bool:
    """Whether a product over the rows ``x`` uses a packed copy (see ``PACK_BATCH_STEPS``)."""
    return (
        PACK_BATCH_STEPS
        and 1 < x.shape[0] <= 2 * PACK_ROWS
        and x.dtype == torch.float32
        and x.device.type == "cpu"
        and not torch.compiler.is_compiling()  # a captured step keeps the plain products
        and packing_available()
    )


class LeanKVCache:
    """Keys/values of every layer for ``max_len`` positions, filled left to right, and the
    RoPE cos/sin of every position."""

    def __init__(self, num_layers, batch, kv_heads, head_dim, max_len, dtype, device, zeroed=False):
        shape = (batch, kv_heads, max_len, head_dim)
        new = torch.zeros if zeroed else torch.empty  # a captured step reads every column
        self.keys: List[torch.Tensor] = [
            new(shape, dtype=dtype, device=device) for _ in range(num_layers)
        ]
        self.values = [new(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.length = 0
        self.max_len = max_len
        self.cos: Optional[torch.Tensor] = None  # (max_len, head_dim)
        self.sin: Optional[torch.Tensor] = None  # sign-folded, see _rotate
        self.weights: List[LayerWeights] = []
        # column blocks of the step's products (espnet2_echat.models.split_linear)
        self.parts = torch.get_num_threads() if torch.device(device).type == "cpu" else 1
        # runs one-position steps instead of the eager forward (a captured step), or None
        self.step: Optional[Callable[..., torch.Tensor]] = None


# Model types whose decoder layer is the one computed here.
LEAN_FAMILIES = ("qwen2", "llama")
# RoPE types whose cos/sin depend on the position only (the table is computed once per cache
# by the model's own rotary embedding); "dynamic" and "longrope" rescale with the length.
STATIC_ROPE_TYPES = ("default", "linear", "llama3")


def lean_decoding_blocker(causal_lm) -> Optional[str]:
    """Why ``causal_lm`` cannot use the lean forward, or None when it can.

    Accepted: the ``LEAN_FAMILIES`` without sliding-window layers, with plain ``nn.Linear``
    projections, a position-only RoPE (``STATIC_ROPE_TYPES``) and the standard attention
    scale ``head_dim ** -0.5``.
    """
    config = causal_lm.config
    if config.model_type not in LEAN_FAMILIES:
        return f"model_type {config.model_type!r} is not one of {LEAN_FAMILIES}"
    layer_types = getattr(config, "layer_types", None) or []
    if getattr(config, "use_sliding_window", False) or "sliding_attention" in layer_types:
        return "sliding-window attention"
    rope_type = getattr(causal_lm.model.rotary_emb, "rope_type", "default")
    if rope_type not in STATIC_ROPE_TYPES:
        return f"RoPE type {rope_type!r} is not one of {STATIC_ROPE_TYPES}"
    layer = causal_lm.model.layers[0]
    parts = [m for group in _layer_parts(layer) for m in group]
    if not all(type(m) is nn.Linear for m in parts):
        return "projections are not plain nn.Linear (LoRA not merged, or quantised)"
    if abs(layer.self_attn.scaling - layer.self_attn.head_dim**-0.5) > 1e-12:
        return f"attention scale {layer.self_attn.scaling} is not head_dim ** -0.5"
    return None


def supports_lean_decoding(causal_lm) -> bool:
    """Whether :func:`lean_decoding_blocker` finds nothing against ``causal_lm``."""
    return lean_decoding_blocker(causal_lm) is None


def new_lean_cache(
    causal_lm, batch: int, max_len: int, dtype, device, zeroed: bool = False
) -> LeanKVCache:
    """A cache of ``max_len`` positions; ``zeroed``: keys/values start as zeros (a captured
    step attends over every column, masked ones included, and 0 * NaN would be NaN)."""
    config = causal_lm.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    cache = LeanKVCache(
        config.num_hidden_layers, batch, config.num_key_value_heads, head_dim, max_len, dtype,
        device, zeroed,
    )
    anchor = torch.empty(0, dtype=dtype, device=device)
    positions = torch.arange(max_len, device=device)[None]
    cos, sin = causal_lm.model.rotary_emb(anchor, positions)
    half = head_dim // 2
    cache.cos, cache.sin = cos[0], torch.cat((-sin[0, :, :half], sin[0, :, half:]), dim=-1)
    cache.weights = decode_weights(causal_lm)
    return cache


def _fuse(linears: List[nn.Linear]) -> torch.Tensor:
    """Stack the weights of ``linears`` into one (in, sum of outs) buffer and make each
    module's weight a view of it (same values, same Parameter objects)."""
    fused = torch.cat([m.weight.detach().t() for m in linears], dim=1).contiguous()
    start = 0
    for m in linears:
        out = m.weight.shape[0]
        m.weight.data = fused[:, start : start + out].t()
        start += out
    return fused


def _fuse_bias(linears: Sequence[nn.Linear]) -> Optional[torch.Tensor]:
    if all(m.bias is None for m in linears):
        return None
    biases = [
        m.bias.detach() if m.bias is not None else m.weight.new_zeros(m.weight.shape[0])
        for m in linears
    ]
    fused = torch.cat(biases)
    start = 0
    for m in linears:
        out = m.weight.shape[0]
        if m.bias is not None:
            m.bias.data = fused[start : start + out]
        start += out
    return fused


def _is_view_of(linears: List[nn.Linear], fused: torch.Tensor) -> bool:
    start = 0
    for m in linears:
        view = fused[:, start : start + m.weight.shape[0]].t()
        if m.weight.data_ptr() != view.data_ptr() or m.weight.stride() != view.stride():
            return False
        start += m.weight.shape[0]
    return True


def _layer_parts(layer):
    attn, mlp = layer.self_attn, layer.mlp
    return [attn.q_proj, attn.k_proj, attn.v_proj], [attn.o_proj], [mlp.gate_proj, mlp.up_proj], [
        mlp.down_proj
    ]


def decode_weights(causal_lm) -> List[LayerWeights]:
    """The decode layout of ``causal_lm``'s layers, re-laid on first use.

    The result is kept on the module and re-checked on every call (once per cache: one
    pointer comparison per weight), so loading new weights in place keeps it valid, and
    replacing a weight tensor re-lays the layer.
    """
    kept = getattr(causal_lm, "_lean_weights", None)
    layers = []
    for i, layer in enumerate(causal_lm.model.layers):
        qkv, o, gate_up, down = _layer_parts(layer)
        old = kept[i] if kept is not None and i < len(kept) else None
        fresh = old is None or not all(
            _is_view_of(group, buf)
            for group, buf in ((qkv, old.qkv), (o, old.o), (gate_up, old.gate_up), (down, old.down))
        )
        if fresh:
            old = LayerWeights(
                _fuse(qkv), _fuse_bias(qkv), _fuse(o), _fuse(gate_up), _fuse(down),
                _fuse_bias(o), _fuse_bias(gate_up), _fuse_bias(down),
            )
        layers.append(old)
    causal_lm._lean_weights = layers
    return layers


def _norm(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """RMSNorm: torch's fused op in float32 (bit-identical to Qwen2RMSNorm / LlamaRMSNorm there), the
    module itself in other dtypes (it rounds before the weight multiply)."""
    if x.dtype == torch.float32:
        return rms_norm(x, module.weight.shape, module.weight, module.variance_epsilon)
    return module(x)


def _rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """transformers' ``apply_rotary_pos_emb`` for one tensor in three ops: its
    ``rotate_half(x) * sin = cat(-x2, x1) * sin`` is ``cat(x2, x1) * cat(-sin1, sin2)``, a flip
    of the two halves times a sign-folded sin table."""
    flipped = x.unflatten(-1, (2, -1)).flip(-2).flatten(-2)
    return torch.addcmul(x * cos, flipped, signed_sin)


def run_layers(
    causal_lm,
    weights: Sequence[LayerWeights],
    inputs_embeds: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    parts: int,
    attend: Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """The decoder layers and the final norm over ``inputs_embeds`` (B, T, H).

    ``cos``/``sin``: (B, T, 1, D) RoPE of the new positions. ``attend(i, q, k, v)`` stores
    layer ``i``'s new keys/values ((B, kv_heads, T, D), RoPE applied) in its cache and returns
    the attention output (B, heads, T, D) of the queries ``q`` (B, heads, T, D): the eager
    forward attends over the filled part of the cache, a captured step over all of it.
    Returns the post-norm hidden states (B, T, H).
    """
    body = causal_lm.model
    batch, steps, hidden = inputs_embeds.shape
    first = body.layers[0].self_attn
    head_dim, heads = first.head_dim, first.config.num_attention_heads
    kv_heads = first.config.num_key_value_heads
    q_size, kv_size = heads * head_dim, kv_heads * head_dim
    x = inputs_embeds.reshape(batch * steps, hidden)
    for i, (layer, w) in enumerate(zip(body.layers, weights)):
        h = _norm(layer.input_layernorm, x)
        qkv = w.product("qkv", w.qkv_bias, h, parts)
        # RoPE on q and k at once: they are adjacent columns of the fused product
        qk = _rotate(qkv[:, : q_size + kv_size].view(batch, steps, -1, head_dim), cos, sin)
        out = attend(
            i,
            qk[:, :, :heads].transpose(1, 2),
            qk[:, :, heads:].transpose(1, 2),
            qkv[:, q_size + kv_size :].view(batch, steps, kv_heads, head_dim).transpose(1, 2),
        )
        x = w.product("o", x, out.transpose(1, 2).reshape(batch * steps, q_size), parts)
        if w.o_bias is not None:
            x = x + w.o_bias
        normed = _norm(layer.post_attention_layernorm, x)
        gate_up = w.product("gate_up", w.gate_up_bias, normed, parts)
        inner = gate_up.shape[1] // 2
        act = layer.mlp.act_fn(gate_up[:, :inner]) * gate_up[:, inner:]
        x = w.product("down", x, act, parts)
        if w.down_bias is not None:
            x = x + w.down_bias
    return _norm(body.norm, x).view(batch, steps, hidden)


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
        cache: filled up to ``cache.length``; extended by ``T``. A one-position step runs
            through ``cache.step`` when the cache has one (a captured step,
            :mod:`espnet2_echat.models.step_capture`).
    """
    batch, steps, _ = inputs_embeds.shape
    start, end = cache.length, cache.length + steps
    if end > cache.max_len:
        raise ValueError(f"KV cache of {cache.max_len} positions is full ({end} needed)")
    if steps == 1 and cache.step is not None:
        hidden = cache.step(causal_lm, inputs_embeds, attention_mask, position_ids, cache)
        cache.length = end
        return LeanOutput(hidden)
    device = inputs_embeds.device
    mask = None  # one query over all cached keys needs none
    if steps > 1 or attention_mask is not None:
        keys_pos = torch.arange(end, device=device)
        query_pos = torch.arange(start, end, device=device)
        mask = (keys_pos[None, :] <= query_pos[:, None])[None, None]
    if attention_mask is not None:
        mask = mask & attention_mask[:, None, None, :end].bool()
        # A padding query attends to itself only, so that no row is fully masked (NaN).
        mask = mask | (keys_pos[None, :] == query_pos[:, None])[None, None]

    def attend(i, q, k, v):
        cache.keys[i][:, :, start:end] = k
        cache.values[i][:, :, start:end] = v
        return scaled_dot_product_attention(
            q, cache.keys[i][:, :, :end], cache.values[i][:, :, :end], attn_mask=mask,
            enable_gqa=True,
        )

    cos = cache.cos[position_ids][:, :, None]  # (B, T, 1, D), broadcast over heads
    sin = cache.sin[position_ids][:, :, None]
    parts = cache.parts if batch * steps <= 16 else 1  # BLAS threads larger products itself
    hidden = run_layers(causal_lm, cache.weights, inputs_embeds, cos, sin, parts, attend)
    cache.length = end
    return LeanOutput(hidden)
