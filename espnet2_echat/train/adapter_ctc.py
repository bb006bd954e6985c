"""CTC alignment of the adapter to the LLM's token embeddings, before stage 1 (issue #13).

With the encoder and the LLM frozen, stage 1 must teach the adapter to turn encoder frames
into embeddings the LLM reads as words, through the LLM's loss alone. On the small_real demo
that did not happen within its budget: the frozen SmolLM2 learned the transcripts' grammar
and ignored the audio (held-out read-sentence WER 90 % after 300 ASR steps; trained LLM, LoRA
or full: 80 %). This step gives the adapter that map directly first: each adapter frame's
logits are the cosine similarities between its output and the LLM's input-embedding rows of
the tokens of the training transcripts (plus a learned blank row), times a learned scale,
trained with CTC against the transcript's token ids. Afterwards the adapter writes, frame by
frame, vectors that point at the embeddings of the words spoken, which the LLM already reads;
stage 1 starts from it (``--init_param <file>:adapter:adapter``). On the demo's corpus, 500
such steps (~4 min on 2 cores, no LLM forward) took held-out read-sentence greedy CTC WER to
26 %, and 150 ASR steps of the frozen LLM after it gave greedy WER 34 % (recipe README).

Only the tokens of the training transcripts are candidate classes: every other row would only
ever be a negative, and the full vocabulary (49152 rows for SmolLM2) would make the logits
~180x the work. ESPnet's CTC module is not used because it owns a free linear projection; here
the classes are the LLM's own embedding rows, which is the point.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class AlignUtterance:
    """One training utterance: its id, the frozen encoder's output (T, D) and token ids."""

    uttid: str
    encoder_out: torch.Tensor
    token_ids: List[int]


class EmbeddingCTC(nn.Module):
    """CTC classes = a blank + the LLM input-embedding rows of ``vocab`` (cosine logits)."""

    def __init__(self, embedding: torch.Tensor, vocab: Sequence[int], init_scale: float = 10.0):
        super().__init__()
        self.vocab = list(vocab)
        self.register_buffer("rows", F.normalize(embedding[self.vocab].detach().float(), dim=-1))
        self.blank = nn.Parameter(torch.zeros(1, embedding.shape[1]))
        self.scale = nn.Parameter(torch.tensor(float(init_scale)))
        self.index = {token: i + 1 for i, token in enumerate(self.vocab)}  # 0: blank

    def logits(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, D) adapter outputs -> (B, T, 1 + len(vocab))."""
        rows = torch.cat([F.normalize(self.blank, dim=-1), self.rows], dim=0)
        return self.scale * F.normalize(frames, dim=-1) @ rows.T

    def targets(self, token_ids: Sequence[int]) -> torch.Tensor:
        return torch.tensor([self.index[t] for t in token_ids if t in self.index])

    def greedy(self, logits: torch.Tensor) -> List[int]:
        """Best path of one utterance's (T, C) logits, repeats merged, blanks dropped."""
        out, previous = [], 0
        for c in logits.argmax(-1).tolist():
            if c != previous and c != 0:
                out.append(self.vocab[c - 1])
            previous = c
        return out


def _batch(adapter: nn.Module, items: Sequence[AlignUtterance]):
    x = nn.utils.rnn.pad_sequence([u.encoder_out for u in items], batch_first=True)
    lengths = torch.tensor([len(u.encoder_out) for u in items])
    dtype = next(adapter.parameters()).dtype
    return adapter(x.to(dtype), lengths)


def ctc_loss(adapter: nn.Module, ctc: EmbeddingCTC, items: Sequence[AlignUtterance]) -> torch.Tensor:
    """Mean CTC loss per target token of ``items`` (utterances too short for their
    transcript contribute zero, as ``zero_infinity`` does)."""
    frames, lengths = _batch(adapter, items)
    log_probs = ctc.logits(frames.float()).log_softmax(-1).transpose(0, 1)
    targets = [ctc.targets(u.token_ids) for u in items]
    return F.ctc_loss(
        log_probs, torch.cat(targets), lengths, torch.tensor([len(t) for t in targets]),
        zero_infinity=True,
    )


@torch.no_grad()
def greedy_token_ids(adapter, ctc: EmbeddingCTC, items: Sequence[AlignUtterance]) -> List[List[int]]:
    """The greedy CTC output (LLM token ids) of each of ``items``."""
    out = []
    for start in range(0, len(items), 16):
        chunk = items[start : start + 16]
        frames, lengths = _batch(adapter, chunk)
        logits = ctc.logits(frames.float())
        out += [ctc.greedy(logits[row, : lengths[row]]) for row in range(len(chunk))]
    return out


def align_adapter(
    adapter: nn.Module,
    embedding: torch.Tensor,
    train: Sequence[AlignUtterance],
    steps: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    warmup_steps: int = 30,
    seed: int = 0,
    log_every: int = 50,
) -> EmbeddingCTC:
    """Train ``adapter`` in place with :class:`EmbeddingCTC` for ``steps`` steps of
    ``batch_size`` utterances drawn at random (AdamW, linear warm-up, gradient norm <= 5);
    returns the CTC classes (for :func:`greedy_token_ids`)."""
    vocab = sorted({t for u in train for t in u.token_ids})
    ctc = EmbeddingCTC(embedding, vocab)
    params = [*adapter.parameters(), ctc.blank, ctc.scale]
    optim = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda done: min(1.0, (done + 1) / max(warmup_steps, 1))
    )
    rng = random.Random(seed)
    adapter.train()
    start = time.perf_counter()
    for step in range(1, steps + 1):
        loss = ctc_loss(adapter, ctc, rng.sample(list(train), min(batch_size, len(train))))
        optim.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        optim.step()
        schedule.step()
        if step % log_every == 0 or step == steps:
            logging.info(
                "step %d/%d ctc %.3f (%.0f s)", step, steps, float(loss), time.perf_counter() - start
            )
    adapter.eval()
    return ctc
