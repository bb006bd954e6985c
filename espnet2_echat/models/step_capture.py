"""The lean decoder's one-position step captured once and replayed (``torch.compile``; on
CUDA with CUDA graphs), behind the ``compile_step`` decoding option (#17).

A step of the eager lean forward (:func:`espnet2_echat.models.lean_decoder.lean_forward`)
launches about 15 small ops a layer from Python; at small sizes that, not reading the
weights, is the step's time. Captured, the step is one compiled program: on CPU inductor's
generated C++ (elementwise work fused, products through BLAS), on CUDA the same replayed as
a CUDA graph (``mode="reduce-overhead"``).

Capture needs every shape fixed, so the captured step differs from the eager one in how it
reaches the cache:

* the cache has a fixed number of columns (``max_len`` rounded up to ``CACHE_BUCKET``, so
  that decodes of similar lengths share one compiled program) and starts as zeros;
* the new key/value is written with ``index_copy_`` at a position given as a tensor (an int
  would be specialised: one compile per position);
* attention runs over every column with a mask (columns after the new one, and padding,
  masked) instead of over the filled part only.

Masked columns get exactly zero weight, so the result equals the eager step up to the order
of floating-point sums (tested in ``tests/models/test_step_capture.py``). One program is
compiled per (batch, columns, padded or not, dtype, device); a decode of many steps reuses it.
"""

from typing import Optional

import torch

from espnet2_echat.models.lean_decoder import LeanKVCache, run_layers

CACHE_BUCKET = 256  # cache columns are a multiple of this when the step is captured


def captured_length(max_len: int) -> int:
    """The cache columns a captured step uses for a decode of ``max_len`` positions."""
    return -(-max_len // CACHE_BUCKET) * CACHE_BUCKET


def _attention(q, keys, values, mask):
    """``scaled_dot_product_attention(q, keys, values, mask, enable_gqa=True)`` for one query
    as plain products and a softmax, which inductor fuses (its CPU flash-attention kernel
    costs ~30 us a call at these sizes)."""
    batch, heads, _, dim = q.shape
    groups = heads // keys.shape[1]
    q = q.reshape(batch, keys.shape[1], groups, dim) * dim**-0.5
    scores = torch.einsum("bkgd,bkld->bkgl", q, keys)
    scores = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    return torch.einsum("bkgl,bkld->bkgd", scores, values).reshape(batch, heads, 1, dim)


def static_step(
    causal_lm,
    cache: LeanKVCache,
    inputs_embeds: torch.Tensor,
    position_ids: torch.Tensor,
    write: torch.Tensor,
    padding: Optional[torch.Tensor],
) -> torch.Tensor:
    """One position through the body with fixed shapes (the function that is compiled).

    Args:
        inputs_embeds: (B, 1, H) the new position.
        position_ids: (B, 1) its RoPE positions.
        write: () long, the cache column of the new position.
        padding: (B, columns) bool, True on real positions (the new one included), or None
            when no row is padded.
    Returns: (B, 1, H) the post-norm hidden state.
    """
    columns = torch.arange(cache.max_len, device=inputs_embeds.device)
    mask = (columns <= write)[None]  # (1, columns): the filled part and the new position
    if padding is not None:
        mask = mask & (padding | (columns == write))  # (B, columns)
    mask = mask[:, None, None, :]
    index = write.view(1)

    def attend(i, q, k, v):
        cache.keys[i].index_copy_(2, index, k)
        cache.values[i].index_copy_(2, index, v)
        return _attention(q, cache.keys[i], cache.values[i], mask)

    cos = cache.cos[position_ids][:, :, None]
    sin = cache.sin[position_ids][:, :, None]
    return run_layers(causal_lm, cache.weights, inputs_embeds, cos, sin, cache.parts, attend)


class StepCapture:
    """The compiled :func:`static_step`, shared by every cache of one LLM.

    Args:
        device_type: ``"cpu"`` (inductor, no CUDA graphs) or ``"cuda"``
            (``mode="reduce-overhead"``: CUDA graphs; the cache tensors are marked as static
            addresses so that the graph writes them in place).
    """

    def __init__(self, device_type: str):
        self.device_type = device_type
        if device_type == "cuda":
            settings = dict(mode="reduce-overhead")
        else:
            # the generated C++ fixes its OpenMP thread count; naming it keeps a program
            # compiled for another count out of inductor's on-disk cache (one compiled for 2
            # threads ran 15x slower under 1 in benchmarks/step_capture.py)
            settings = dict(options={"cpp.threads": torch.get_num_threads()})
        self.compiled = torch.compile(static_step, dynamic=False, fullgraph=True, **settings)

    def prepare(self, cache: LeanKVCache) -> None:
        """Make ``cache`` run its one-position steps through the compiled step."""
        if self.device_type == "cuda":
            for tensor in (*cache.keys, *cache.values):
                torch._dynamo.mark_static_address(tensor)
        cache.step = self
        cache.step_checked = None  # what the last guarded step of this cache was called with

    def __call__(
        self,
        causal_lm,
        inputs_embeds: torch.Tensor,
        attention_mask: Optional[torch.Tensor],
        position_ids: torch.Tensor,
        cache: LeanKVCache,
    ) -> torch.Tensor:
        """The step :func:`~espnet2_echat.models.lean_decoder.lean_forward` delegates to."""
        start = cache.length
        device = inputs_embeds.device
        write = torch.tensor(start, device=device)
        padding = None
        if attention_mask is not None:
            real = attention_mask[:, : start + 1].bool()
            padding = torch.nn.functional.pad(real, (0, cache.max_len - start - 1))
        args = (causal_lm, cache, inputs_embeds, position_ids, write, padding)
        called_with = (id(causal_lm), inputs_embeds.shape, inputs_embeds.dtype, padding is None)
        if cache.step_checked == called_with:
            # The step before ran this cache's program with the same module, shapes and
            # dtypes, and dynamo's guards passed; between two steps of one decode only tensor
            # values change, which no guard reads. Evaluating the guards again (every
            # parameter and cache tensor of the LLM) took ~0.15 ms of a ~1 ms tiny step.
            with torch.compiler.set_stance(skip_guard_eval_unsafe=True):
                hidden = self.compiled(*args)
        else:
            hidden = self.compiled(*args)
            cache.step_checked = called_with
        # a CUDA graph's output is overwritten by its next replay
        return hidden.clone() if self.device_type == "cuda" else hidden
