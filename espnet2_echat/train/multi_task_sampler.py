"""Token-budget batches per task, mixed across tasks with per-task weights
(docs/data_pipeline.md#batching).

The reference keeps one dynamic batcher per output type (so every batch holds one type),
flushes a buffer when ``longest x (n + 1)`` estimated LLM tokens exceed 3700 (scaled per
type), and draws one of four loaders per step in proportion to its manifest size, where an
integer weight repeats a list and a fraction takes part of it. This sampler does the same
on ESPnet's iterator: :meth:`generate` returns one pass of batches, and ESPnet's
``SequenceIterFactory`` shuffles it per epoch, restricts it with ``num_iters_per_epoch``
and reproduces it on resume.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from espnet2.samplers.abs_sampler import AbsSampler

# Budget multipliers per output type (reference: x0.8 s2s, x0.6 streaming/think/history/t2t).
REFERENCE_TYPE_SCALE: Dict[str, float] = {
    "speech2text_token": 0.8,
    "speech2text_token_streaming": 0.6,
    "speech2text_token_think": 0.6,
    "speech2text_token_history": 0.6,
    "text2text": 0.6,
}
MIXING_MODES = ("repeat", "proportion")


def bucket_by_tokens(
    items: Sequence[Tuple[str, int, float]],
    batch_tokens: int,
    max_batch_size: Optional[int] = None,
    min_batch_size: int = 1,
) -> List[Tuple[str, ...]]:
    """Length-sorted batches whose ``longest x size`` stays within ``batch_tokens``.

    ``items`` are ``(uid, length, scale)``: a sample costs ``length / scale`` tokens.
    A sample longer than the budget forms a batch of its own (never dropped).
    """
    order = sorted(items, key=lambda x: (x[1] / x[2], x[0]))
    batches: List[List[str]] = []
    current: List[str] = []
    longest = 0.0
    for uid, length, scale in order:
        cost = length / scale
        full = max_batch_size is not None and len(current) >= max_batch_size
        if current and (max(longest, cost) * (len(current) + 1) > batch_tokens or full):
            batches.append(current)
            current, longest = [], 0.0
        current.append(uid)
        longest = max(longest, cost)
    if current:
        batches.append(current)
    # batches smaller than min_batch_size (e.g. the world size) merge into their neighbour
    merged: List[List[str]] = []
    for b in batches:
        if merged and len(b) < min_batch_size:
            merged[-1] = merged[-1] + b
        else:
            merged.append(b)
    if merged and len(merged[0]) < min_batch_size and len(merged) > 1:
        merged[1] = merged[0] + merged[1]
        merged = merged[1:]
    return [tuple(b) for b in merged]


def pool_by_weight(
    groups: Mapping[str, Sequence[Tuple[str, int, float]]],
    weights: Mapping[str, float],
    seed: int = 0,
) -> List[Tuple[str, int, float]]:
    """One pool of all groups' items for mixed batches, each group repeated by its weight.

    An integer weight repeats every item; a fraction adds a seeded random part of them.
    """
    pool: List[Tuple[str, int, float]] = []
    for i, (g, items) in enumerate(sorted(groups.items())):
        whole, frac = divmod(float(weights[g]), 1.0)
        pool += list(items) * int(whole)
        order = np.random.RandomState(seed + i).permutation(len(items))
        pool += [items[j] for j in order[: int(round(frac * len(items)))]]
    return pool


class MultiTaskBatchSampler(AbsSampler):
    """Homogeneous token-budget batches of several groups, mixed by weight.

    Args:
        groups: ``{group: [(uid, estimated_tokens, budget_scale), ...]}``; a group is one
            (data set, output type) pair for homogeneous batches, or one data set for mixed.
        weights: ``{group: weight}``. ``repeat`` mode: a pass holds ``weight x`` the group's
            batches (integer part whole copies, the fraction a random part), as the
            reference's data yaml; ``proportion`` mode: the group gets ``weight / sum``
            of the pass's batches whatever its size.
        batch_tokens: the token budget of one batch (the reference's max_seq_in_batch).
        mixing: ``repeat`` or ``proportion``.
        rank, world_size: distributed training: each batch is split across ranks.
    """

    def __init__(
        self,
        groups: Mapping[str, Sequence[Tuple[str, int, float]]],
        weights: Mapping[str, float],
        batch_tokens: int,
        max_batch_size: Optional[int] = None,
        mixing: str = "repeat",
        rank: int = 0,
        world_size: int = 1,
    ):
        if mixing not in MIXING_MODES:
            raise ValueError(f"mixing must be one of {MIXING_MODES}, got {mixing!r}")
        missing = set(groups) - set(weights)
        if missing:
            raise ValueError(f"no weight for groups {sorted(missing)}")
        self.batches = {
            g: bucket_by_tokens(items, batch_tokens, max_batch_size, world_size)
            for g, items in groups.items()
            if items
        }
        self.weights = {g: float(weights[g]) for g in self.batches}
        if any(w < 0 for w in self.weights.values()) or not any(self.weights.values()):
            raise ValueError(f"weights must be >= 0 and not all 0, got {self.weights}")
        self.mixing = mixing
        self.rank, self.world_size = rank, world_size
        self.counts = self._counts()

    def _counts(self) -> Dict[str, int]:
        """Batches each group contributes to one pass."""
        if self.mixing == "repeat":
            return {g: int(round(self.weights[g] * len(b))) for g, b in self.batches.items()}
        total_w = sum(self.weights.values())
        total = sum(len(b) for b in self.batches.values())
        return {g: int(round(self.weights[g] / total_w * total)) for g in self.batches}

    def __len__(self) -> int:
        return sum(self.counts.values())

    def __iter__(self):
        return iter(self.generate(0))

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(groups={ {g: len(b) for g, b in self.batches.items()} }, "
            f"per_pass={self.counts}, mixing={self.mixing})"
        )

    def generate(self, seed: int) -> List[Tuple[str, ...]]:
        """One pass: each group's batches, cycled in a seeded order, grouped by group."""
        out: List[Tuple[str, ...]] = []
        for i, (g, batches) in enumerate(sorted(self.batches.items())):
            rs = np.random.RandomState((seed * 7919 + i) % (2**32))
            picked: List[Tuple[str, ...]] = []
            while len(picked) < self.counts[g]:
                perm = rs.permutation(len(batches))
                picked += [batches[j] for j in perm[: self.counts[g] - len(picked)]]
            out += picked
        if self.world_size > 1:
            out = [b[self.rank :: self.world_size] for b in out]
        return out
