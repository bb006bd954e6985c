"""Auxiliary utterance-level label heads on the adapter's output (``--label_aux_weight``).

Outside the reference's objective, off by default. With a frozen LLM the only training
signal the adapter gets for a voice trait (gender, age) is the answer token's cross-entropy
back through the whole LLM, and on the small_real size that signal did not teach held-out
gender within hundreds of steps (``egs2/echat/echat1/README.md``), although a linear probe on
the same encoder outputs reads it. These heads give the adapter a direct per-utterance loss:
a linear classifier per label kind on the mean of the sample's audio embeddings (the LLM
input the adapter writes for the sample's own speech), cross-entropy against its
``utt2<label>`` value. No ecosystem module does this on a speech-LLM adapter; the classifier
itself is a plain ``nn.Linear``.

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


def pooled_audio(
    audio: List[Union[None, torch.Tensor, List[torch.Tensor]]], width: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The mean audio embedding of each sample's own speech (the last segment of a
    multi-turn sample), (B, width), and which samples have one (B,)."""
    rows, has = [], []
    for a in audio:
        own = a[-1] if isinstance(a, list) and a else a
        if isinstance(own, torch.Tensor) and own.shape[0] > 0:
            rows.append(own.mean(dim=0))
            has.append(True)
        else:
            rows.append(None)
            has.append(False)
    ref = next((r for r in rows if r is not None), None)
    if ref is None:
        return torch.zeros(len(audio), width), torch.zeros(len(audio), dtype=torch.bool)
    pooled = torch.stack([r if r is not None else ref.new_zeros(width) for r in rows])
    return pooled, torch.tensor(has, device=ref.device)


class LabelHeads(nn.Module):
    """One linear classifier per label kind on the pooled audio embedding."""

    def __init__(self, width: int, kinds: Sequence[str] = LABEL_AUX_KINDS):
        super().__init__()
        self.kinds = check_kinds(kinds)
        self.width = width
        self.heads = nn.ModuleDict(
            {kind: nn.Linear(width, len(LABEL_SETS[kind][0])) for kind in self.kinds}
        )

    def forward(
        self,
        audio: List[Union[None, torch.Tensor, List[torch.Tensor]]],
        label_ids: torch.Tensor,
    ) -> Tuple[Optional[torch.Tensor], Dict[str, torch.Tensor]]:
        """Mean over kinds with labels in the batch of the per-kind mean cross-entropy (None
        when no sample has audio and a label), and per-kind accuracies."""
        pooled, has_audio = pooled_audio(audio, self.width)
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
