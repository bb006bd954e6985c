"""Trainable rows for a few text ids of a frozen LLM (the tags of ``add_tag_tokens``).

With ``trainable_parts: link`` the LLM's embedding and head stay frozen, so a tag added to
its tokenizer (``data.tag_tokens``) would keep the row it was given at start, the mean of
its old pieces, and the model could not learn to write ``<MALE>`` as one id. Training the
whole embedding instead would move every row through weight decay, grow the optimiser state
by the vocabulary and change the LLM's weights at every step (which the frozen-prefix cache
keys on). :class:`TextRowDeltas` holds one trainable delta per listed id instead, zero at
start, so the model computes with ``weight[id] + delta`` in the input embedding and in the
output head (one delta for both when they are tied, as in SmolLM2; two when untied, as in
Qwen2.5) and nothing else of the LLM changes.

transformers has no partial-row training, and peft's ``trainable_token_indices`` wraps the
embedding module itself (changing its parameter names and the lean decoder's reads); the
delta table beside the LLM keeps the LLM's own parameters as transformers loads them, like
the speech table beside it.
"""

from typing import Sequence

import torch
from torch import nn


class TextRowDeltas(nn.Module):
    """Deltas for the input (and, when untied, output) rows of the text ids ``ids``.

    Args:
        ids: the text ids whose rows train (any order, no repeats).
        hidden: the LLM width.
        tied: whether the LLM's output head is its input embedding.
        dtype: the parameters' dtype (the LLM's).
    """

    def __init__(self, ids: Sequence[int], hidden: int, tied: bool, dtype: torch.dtype):
        super().__init__()
        ids = sorted(int(i) for i in ids)
        if not ids or len(set(ids)) != len(ids) or ids[0] < 0:
            raise ValueError(f"TextRowDeltas needs distinct non-negative ids, got {ids}")
        # derived from the tokenizer and the config, so not part of the checkpoint
        self.register_buffer("ids", torch.tensor(ids), persistent=False)
        self.input_delta = nn.Parameter(torch.zeros(len(ids), hidden, dtype=dtype))
        self.output_delta = (
            None if tied else nn.Parameter(torch.zeros(len(ids), hidden, dtype=dtype))
        )

    def contains(self, ids: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the entries of ``ids`` (any shape) that have a delta."""
        return torch.isin(ids, self.ids)

    def embed(self, ids: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """``text`` (ids.shape + (H,)), the frozen table's rows of ``ids``, with the deltas added."""
        row = torch.searchsorted(self.ids, ids).clamp(max=len(self.ids) - 1)
        hit = self.ids[row] == ids
        delta = self.input_delta[row].to(text.dtype)
        return torch.where(hit[..., None], text + delta, text)

    def logits(self, hidden: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` (..., V) of the frozen head with ``hidden @ delta.T`` added to the columns
        of the ids."""
        delta = self.input_delta if self.output_delta is None else self.output_delta
        extra = hidden.to(delta.dtype) @ delta.t()
        return logits.index_add(-1, self.ids, extra.to(logits.dtype))
