"""Auxiliary utterance-level label heads on the adapter's output (``--label_aux_weight``).

Outside the reference's objective, off by default. With a frozen LLM the only training
signal the adapter gets for a voice trait (gender, age) is the answer token's cross-entropy
back through the whole LLM, and on the small_real size that signal did not teach held-out
gender within hundreds of steps (``egs2/echat/echat1/README.md``), although a linear probe on
the same encoder outputs reads it. These heads give the adapter a direct per-utterance loss:
a linear classifier per label kind on the mean (or the last frame, ``--label_aux_pool``) of
the sample's audio embeddings (the LLM input the adapter writes for the sample's own
speech), cross-entropy against its
``utt2<label>`` value. No ecosystem module does this on a speech-LLM adapter; the classifier
itself is a plain ``nn.Linear``.

Measured on the small_real size: gender trained alone reached 80 % held out through the
LLM's answer with weight 100; in the mixed-task demo at weight 100 the gender head itself did
not learn and the LLM answered ASR and chat prompts with a label tag, so the demo leaves the
heads off (``egs2/echat/echat1/README.md``, "The label heads in the demo").

The preprocessor writes ``label_ids`` (``data.label_ids``: one index per kind of ``kinds``,
``IGNORE_ID`` where the sample has no such label or it is unknown); the model adds ``weight x``
the mean over kinds of the per-kind mean cross-entropy. The heads are training-only: decoding
never runs them. A head whose kind is absent from a batch gets no gradient in that step
(multi-GPU DDP then needs ``find_unused_parameters``; not tested here).
"""

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from espnet2_echat.data.label_ids import LABEL_AUX_KINDS, check_kinds
from espnet2_echat.data.labels import LABEL_SETS
from espnet2_echat.data.templates import IGNORE_ID


POOLS = ("mean", "last", "stats")


def pooled_audio(
    audio: List[Union[None, torch.Tensor, List[torch.Tensor]]], width: int, pool: str = "mean"
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The pooled audio embedding of each sample's own speech (the last segment of a
    multi-turn sample), (B, width), and which samples have one (B,).

    ``pool``: ``mean`` over its frames; its ``last`` frame (the adapter's self-attention
    lets that frame summarise the utterance, and the LLM reads it right before the answer:
    a label carried there is what ``diagnose_label_path --mode oracle`` showed the frozen LLM
    answers from within tens of steps); or ``stats``, the mean and the standard deviation
    over its frames side by side (2 x width), as a speaker-embedding statistics pooling.
    """
    if pool not in POOLS:
        raise ValueError(f"label_aux_pool must be one of {POOLS}, got {pool!r}")
    rows, has = [], []
    if pool == "stats":
        width = 2 * width
    for a in audio:
        own = a[-1] if isinstance(a, list) and a else a
        if isinstance(own, torch.Tensor) and own.shape[0] > 0:
            rows.append(_pool(own, pool))
            has.append(True)
        else:
            rows.append(None)
            has.append(False)
    ref = next((r for r in rows if r is not None), None)
    if ref is None:
        return torch.zeros(len(audio), width), torch.zeros(len(audio), dtype=torch.bool)
    pooled = torch.stack([r if r is not None else ref.new_zeros(width) for r in rows])
    return pooled, torch.tensor(has, device=ref.device)


def _pool(frames: torch.Tensor, pool: str) -> torch.Tensor:
    if pool == "last":
        return frames[-1]
    if pool == "mean":
        return frames.mean(dim=0)
    std = frames.std(dim=0, correction=0) if frames.shape[0] > 1 else torch.zeros_like(frames[0])
    return torch.cat([frames.mean(dim=0), std])


class LabelHeads(nn.Module):
    """One linear classifier per label kind on the pooled audio embedding (``pool``: see
    :func:`pooled_audio`). With ``stats`` each feature is standardised over the batch first
    (``BatchNorm1d`` without affine terms): the utterance statistics differ in scale by orders
    of magnitude across features, and a linear classifier under Adam learns from raw ones
    only along the largest (a logistic regression on standardised mean/std encoder features
    read held-out gender at 74-83 % where raw ones stayed near chance, recipe README)."""

    def __init__(self, width: int, kinds: Sequence[str] = LABEL_AUX_KINDS, pool: str = "mean"):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"label_aux_pool must be one of {POOLS}, got {pool!r}")
        self.kinds = check_kinds(kinds)
        self.width = width
        self.pool = pool
        features = 2 * width if pool == "stats" else width
        self.norm = nn.BatchNorm1d(features, affine=False) if pool == "stats" else nn.Identity()
        self.heads = nn.ModuleDict(
            {kind: nn.Linear(features, len(LABEL_SETS[kind][0])) for kind in self.kinds}
        )

    def _standardise(self, x: torch.Tensor) -> torch.Tensor:
        """Batch statistics in training (running ones for a batch of one), running ones in
        evaluation; the running statistics follow ``BatchNorm1d``'s."""
        norm = self.norm
        return nn.functional.batch_norm(
            x, norm.running_mean, norm.running_var,
            training=self.training and x.shape[0] > 1, momentum=norm.momentum, eps=norm.eps,
        )

    def forward(
        self,
        audio: List[Union[None, torch.Tensor, List[torch.Tensor]]],
        label_ids: torch.Tensor,
    ) -> Tuple[Optional[torch.Tensor], Dict[str, torch.Tensor]]:
        """Mean over kinds with labels in the batch of the per-kind mean cross-entropy (None
        when no sample has audio and a label), and per-kind accuracies."""
        pooled, has_audio = pooled_audio(audio, self.width, self.pool)
        if self.pool == "stats" and has_audio.any():
            pooled = pooled.float().clone()
            pooled[has_audio] = self._standardise(pooled[has_audio])
        losses, stats = [], {}
        for j, kind in enumerate(self.kinds):
            target = label_ids[:, j].to(has_audio.device)
            keep = has_audio & (target != IGNORE_ID)
            if not keep.any():
                continue
            logits = self.heads[kind](pooled[keep].float())
            losses.append(nn.functional.cross_entropy(logits, target[keep]))
            stats[f"aux_acc_{kind}"] = (logits.argmax(-1) == target[keep]).float().mean().detach()
        if not losses:
            return None, stats
        return torch.stack(losses).mean(), stats
