"""Frozen-prefix key/value reuse in training (issue #13).

With the LLM frozen (``trainable_parts: link``), the text ids of a sample before its first
audio placeholder (the system prompt and the task instruction: about half of every stage-1
sequence) neither depend on a trained parameter nor carry a loss, and the same few prefixes
recur across the corpus. :class:`FrozenPrefixCache` computes their keys and values once per
distinct prefix (no gradient) and :func:`hidden_after_frozen_prefix` runs the LLM on the rest of
each sample with that past, so neither the forward nor the backward of a step passes through
the prefix again. The result equals the full forward up to float round-off: the prefix's
hidden states and keys/values are the same function of the same frozen weights, and nothing
trained reaches them.

Only exact cases use it (:func:`frozen_prefix_blocker` names why not otherwise): an LLM that
trains (``trainable_parts`` with the LLM, LoRA), dropout inside the LLM, gradient checkpointing
of the LLM (transformers drops the cache in checkpointed layers), attention other than full
causal attention in every layer, or DeepSpeed-partitioned weights fall back to the full
forward.
"""

from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn
from transformers import DynamicCache

from espnet2_echat.data.templates import IGNORE_ID
from espnet2_echat.models.speech_llm import SpeechLLM
from espnet2_echat.models.splice import pack

KeyValues = List[Tuple[torch.Tensor, torch.Tensor]]  # per layer: (heads, P, d) keys, values


def frozen_prefix_blocker(llm: SpeechLLM) -> Optional[str]:
    """Why the frozen prefix of a training step cannot be reused exactly, or None if it can."""
    causal_lm = llm.causal_lm
    trained = [name for name, p in causal_lm.named_parameters() if p.requires_grad]
    if trained:
        return f"the LLM trains ({len(trained)} tensors, e.g. {trained[0]}), so its prefix needs gradients"
    if any(hasattr(p, "ds_id") for p in causal_lm.parameters()):
        return "the LLM's weights are partitioned by DeepSpeed"
    config = causal_lm.config
    if causal_lm.training:
        dropping = [
            name for name, m in causal_lm.named_modules() if isinstance(m, nn.Dropout) and m.p > 0
        ]
        if dropping or getattr(config, "attention_dropout", 0.0) > 0:
            return "the LLM applies dropout in training"
        if getattr(causal_lm, "is_gradient_checkpointing", False) and torch.is_grad_enabled():
            return "the LLM uses gradient checkpointing, which drops a past key/value cache"
    layer_types = getattr(config, "layer_types", None) or []
    if any(kind != "full_attention" for kind in layer_types):
        return f"the LLM has layers other than full attention ({sorted(set(layer_types))})"
    return None


def frozen_prefix_length(ids: torch.Tensor, target: torch.Tensor, llm: SpeechLLM) -> int:
    """How many leading positions of one sample are frozen text with no loss.

    ``ids`` and ``target`` are the sample's unified ids and targets before audio is spliced
    in (same length). The prefix ends at the first id whose embedding trains (an audio
    placeholder, a speech-table id, a trainable text row: ``llm.has_trainable_embedding``)
    and before the position whose hidden state predicts the first supervised target; at
    least one position is left.
    """
    n = int(ids.shape[0])
    trained_input = llm.has_trainable_embedding(ids).nonzero()
    first_input = int(trained_input[0]) if len(trained_input) else n
    supervised = (target != IGNORE_ID).nonzero()
    first_output = int(supervised[0]) - 1 if len(supervised) else n  # hidden t predicts t+1
    return max(0, min(first_input, first_output, n - 1))


def weights_key(module: nn.Module) -> Tuple:
    """Changes when any weight of ``module`` is replaced or changed in place through autograd's
    view of it (``load_state_dict``, an optimiser step, ``.to()``); edits through ``.data``
    are not seen: call :meth:`FrozenPrefixCache.clear` after those."""
    return tuple((p.data_ptr(), p._version, p.dtype) for p in module.parameters())


class FrozenPrefixCache:
    """Keys and values of the frozen LLM's prefixes, computed once per distinct prefix.

    Entries are keyed by the prefix's ids and dropped when the LLM's weights change
    (:func:`weights_key`) or the autocast dtype it runs under does; the least recently used
    go beyond ``max_bytes``.
    """

    def __init__(self, max_bytes: int = 256 * 2**20):
        self.max_bytes = max_bytes
        self.entries: "OrderedDict[Tuple[int, ...], KeyValues]" = OrderedDict()
        self.bytes = 0
        self.weights: Optional[Tuple] = None
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Forget every entry."""
        self.entries.clear()
        self.bytes = 0

    def key_values(self, llm: SpeechLLM, ids: torch.Tensor) -> KeyValues:
        """Per layer (heads, P, d) keys and values of the text ids ``ids`` (P,) at positions
        0..P-1, from the cache or computed now without gradient."""
        device = ids.device.type
        autocast = torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device)
        weights = (weights_key(llm.causal_lm), autocast)
        if weights != self.weights:
            self.clear()
            self.weights = weights
        key = tuple(ids.tolist())
        if key in self.entries:
            self.hits += 1
            self.entries.move_to_end(key)
            return self.entries[key]
        self.misses += 1
        cache = DynamicCache()
        with torch.no_grad():
            n = ids.shape[0]
            llm.hidden_states(
                llm.embed(ids)[None],
                torch.ones(1, n, dtype=torch.long, device=ids.device),
                torch.arange(n, device=ids.device)[None],
                past_key_values=cache,
                use_cache=True,
            )
        kv = [(layer.keys[0], layer.values[0]) for layer in cache.layers]
        self.entries[key] = kv
        self.bytes += sum(k.nbytes + v.nbytes for k, v in kv)
        while self.bytes > self.max_bytes and len(self.entries) > 1:
            _, old = self.entries.popitem(last=False)
            self.bytes -= sum(k.nbytes + v.nbytes for k, v in old)
        return kv

    def past(
        self, llm: SpeechLLM, prefixes: Sequence[torch.Tensor]
    ) -> Tuple[DynamicCache, torch.Tensor]:
        """A batch's past: each sample's prefix key/values left-padded to the longest prefix
        (a new ``DynamicCache``), and its (B, P_max) attention mask (0 on the padding)."""
        p_max = max(int(p.shape[0]) for p in prefixes)
        per_sample = [self.key_values(llm, p) if p.shape[0] else None for p in prefixes]
        template = next(kv for kv in per_sample if kv is not None)
        layers = []
        for layer, (k0, v0) in enumerate(template):
            keys, values = [], []
            for kv in per_sample:
                k, v = kv[layer] if kv is not None else (k0[:, :0], v0[:, :0])
                pad = (0, 0, p_max - k.shape[1], 0)  # left, along positions
                keys.append(nn.functional.pad(k, pad))
                values.append(nn.functional.pad(v, pad))
            layers.append((torch.stack(keys), torch.stack(values)))
        mask = torch.zeros(len(prefixes), p_max, dtype=torch.long, device=template[0][0].device)
        for row, p in enumerate(prefixes):
            mask[row, p_max - p.shape[0] :] = 1
        return DynamicCache(layers), mask


def hidden_after_frozen_prefix(
    llm: SpeechLLM,
    cache: FrozenPrefixCache,
    prefixes: Sequence[torch.Tensor],
    embeds: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The LLM's last hidden states after each sample's frozen prefix, and the targets there.

    ``prefixes[i]`` (P_i,) are sample i's leading text ids (:func:`frozen_prefix_length`),
    ``embeds[i]`` (L_i, H) and ``targets[i]`` (L_i,) the whole spliced sample. Returns hidden
    (B, T, H) and target (B, T) for positions P_i.. of each sample, right-padded, in the
    layout :meth:`EChatModel.loss` reads (hidden t predicts target t+1).
    """
    past, past_mask = cache.past(llm, prefixes)
    lengths = [int(p.shape[0]) for p in prefixes]
    rest = pack([e[n:] for e, n in zip(embeds, lengths)], [t[n:] for t, n in zip(targets, lengths)])
    offsets = torch.tensor(lengths, device=rest.position_ids.device)[:, None]
    hidden = llm.hidden_states(
        rest.inputs_embeds,
        torch.cat([past_mask, rest.attention_mask], dim=1),
        rest.position_ids + offsets,
        past_key_values=past,
        use_cache=True,
    ).last_hidden_state
    return hidden, rest.target
