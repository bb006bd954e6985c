"""Splice encoded audio into id sequences and pack a batch for the LLM (docs/tasks.md#layouts).

A sample is one sequence of unified ids (text < V, speech-table >= V) in which each
``AUDIO_PLACEHOLDER`` marks where the adapter output of one audio segment goes (a
multi-turn sample has one per past user turn with audio, then its own speech). Each sample is
packed contiguously and padded at one side. The reference instead pads every template
segment separately, leaving holes inside sequences and shifting the loss across them
(docs/model.md#loss, docs/differences.md); batches of one are identical in both layouts, and
contiguous packing is what a clean implementation should train with.
"""

from typing import List, NamedTuple, Optional, Sequence, Union

import torch

from espnet2_echat.data.templates import AUDIO_PLACEHOLDER, IGNORE_ID


class PackedBatch(NamedTuple):
    inputs_embeds: torch.Tensor  # (B, L, H)
    attention_mask: torch.Tensor  # (B, L) long
    position_ids: torch.Tensor  # (B, L)
    target: Optional[torch.Tensor]  # (B, L) unified ids, IGNORE_ID where unsupervised


def splice_sample(
    embed,
    ids: torch.Tensor,
    audio: Union[None, torch.Tensor, Sequence[torch.Tensor]],
    target: Optional[torch.Tensor] = None,
):
    """Embed one sample's ids and put its audio (n_k, H) at its placeholders, in order.

    ``audio`` is one tensor (a sample with one placeholder) or a sequence of them, one per
    placeholder (the past user turns of a multi-turn sample, then the current turn).
    Returns (embeds (L', H), target (L',) or None) where audio rows are unsupervised.
    """
    where = (ids == AUDIO_PLACEHOLDER).nonzero().flatten().tolist()
    if not where:
        return embed(ids), target
    if audio is None:
        raise ValueError("a sample has an audio placeholder but no audio was encoded")
    audios = [audio] if isinstance(audio, torch.Tensor) else list(audio)
    if len(where) != len(audios):
        raise ValueError(
            f"a sample holds {len(where)} audio placeholders but {len(audios)} audio segments"
        )
    parts, holes = [], []
    start = 0
    for pos, a in zip(where, audios):
        text = embed(ids[start:pos])
        parts += [text, a.to(device=text.device, dtype=text.dtype)]
        if target is not None:
            holes += [target[start:pos], target.new_full((a.shape[0],), IGNORE_ID)]
        start = pos + 1
    parts.append(embed(ids[start:]))
    if target is not None:
        target = torch.cat(holes + [target[start:]])
    return torch.cat(parts), target


def pack(
    embeds: Sequence[torch.Tensor],
    targets: Optional[Sequence[torch.Tensor]] = None,
    padding_side: str = "right",
) -> PackedBatch:
    """Pad per-sample embeddings into a batch with mask and position ids (0.. per sample)."""
    lengths = [e.shape[0] for e in embeds]
    batch, max_len, hidden = len(embeds), max(lengths), embeds[0].shape[1]
    out = embeds[0].new_zeros(batch, max_len, hidden)
    mask = torch.zeros(batch, max_len, dtype=torch.long, device=out.device)
    tgt = None if targets is None else torch.full_like(mask, IGNORE_ID)
    for i, (emb, n) in enumerate(zip(embeds, lengths)):
        span = slice(0, n) if padding_side == "right" else slice(max_len - n, max_len)
        out[i, span] = emb
        mask[i, span] = 1
        if tgt is not None:
            tgt[i, span] = targets[i]
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    return PackedBatch(out, mask, position_ids, tgt)


def unpad(padded: torch.Tensor, lengths: torch.Tensor) -> List[torch.Tensor]:
    """Split a padded (B, T, ...) tensor into its B valid prefixes."""
    return [padded[i, : int(n)] for i, n in enumerate(lengths)]
