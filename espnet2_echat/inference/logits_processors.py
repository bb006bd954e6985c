"""Logits processors and stopping criteria of OSUM-EChat decoding
(docs/decoding.md#logits-processors).

All of them follow the transformers interfaces (``LogitsProcessor`` /
``StoppingCriteria``) and see the decoder's *unified* ids: text ids ``< V``, speech ids
``V + k``. ``input_ids`` holds the generated ids only (as in the reference, which calls
``generate`` with ``inputs_embeds`` alone), ``scores`` is ``(B, V + speech_token_num)``
with the inactive head at ``-inf``.

transformers has no processor for these rules (forced choice after a trigger sequence,
per-id repeat windows restricted to one part of the vocabulary, head-phase budgets), so
they are written here; sampling warpers and repetition penalty are transformers' own
classes (top-p through a subclass that sorts only a row's finite entries).
"""

from typing import Dict, Optional, Sequence, Tuple

import torch
from transformers.generation.logits_process import LogitsProcessor, TopPLogitsWarper
from transformers.generation.stopping_criteria import StoppingCriteria

from espnet2_echat.data.templates import IM_END_ID

# "年龄为:<" and the ids allowed after it: CHILD, AD(ULT), OLD (docs/labels.md#tag-think,
# docs/decoding.md#logits-processors).
AGE_TRIGGER_IDS: Tuple[int, ...] = (102185, 17714, 31252)
AGE_ALLOWED_IDS: Tuple[int, ...] = (99119, 1808, 7863)


def _mask_all_but(scores: torch.Tensor, row: int, allowed: Sequence[int]) -> None:
    keep = scores[row, list(allowed)].clone()
    scores[row] = float("-inf")
    scores[row, list(allowed)] = keep


class MinNewTokensLogitsProcessor(LogitsProcessor):
    """Ban the stop ids while fewer than ``min_new_tokens`` ids were generated.

    Same effect as transformers' ``MinLengthLogitsProcessor`` on generated-only ids (the
    reference's ``min_length=1``), but free once the minimum is reached: transformers'
    class builds a vocabulary-wide mask at every step.
    """

    def __init__(self, min_new_tokens: int, stop_ids: Sequence[int]):
        self.min_new_tokens = min_new_tokens
        self.stop_ids = torch.tensor(list(stop_ids), dtype=torch.long)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] < self.min_new_tokens:
            scores.index_fill_(1, self.stop_ids.to(scores.device), float("-inf"))
        return scores


class AgeForcingLogitsProcessor(LogitsProcessor):
    """After ``年龄为:<`` only ``CHILD`` / ``AD`` / ``OLD`` may follow (reference
    ``OSUM_chat_LogitsProcessor``); fires at most once per row and call."""

    def __init__(
        self,
        trigger: Sequence[int] = AGE_TRIGGER_IDS,
        allowed: Sequence[int] = AGE_ALLOWED_IDS,
    ):
        self.trigger = list(trigger)
        self.allowed = list(allowed)
        self.fired: set = set()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        n = len(self.trigger)
        if input_ids.shape[1] < n:
            return scores
        tail = input_ids[:, -n:].tolist()
        for row, ids in enumerate(tail):
            if row not in self.fired and ids == self.trigger:
                _mask_all_but(scores, row, self.allowed)
                self.fired.add(row)
        return scores


class SpeechNGramBlockingLogitsProcessor(LogitsProcessor):
    """Ban a speech id that repeats too often (what the reference's
    ``SpeechOnlyNGramBlockingLogitsProcessor`` intends; the reference never activates it).

    A speech id is banned after ``repeat_times`` consecutive repeats, or when it occurs
    ``window_repeat`` times in the last ``window_size`` speech ids; ``special`` gives
    per-id ``(repeat_times, window_size, window_repeat)`` (1446, silence-like: (10, 13, 10)).
    Ids are raw speech ids; only rows whose last id is a speech id are touched.
    """

    def __init__(
        self,
        text_vocab_size: int,
        repeat_times: int = 5,
        window_size: int = 8,
        window_repeat: int = 5,
        special: Optional[Dict[int, Tuple[int, int, int]]] = None,
    ):
        self.vocab = text_vocab_size
        self.default = (repeat_times, window_size, window_repeat)
        self.special = {1446: (10, 13, 10)} if special is None else special

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        span = max(max(r, w) for r, w, _ in [self.default, *self.special.values()])
        for row, ids in enumerate(input_ids[:, -span:].tolist()):
            speech = []
            for i in reversed(ids):  # trailing run of speech ids
                if i < self.vocab:
                    break
                speech.append(i - self.vocab)
            speech.reverse()
            for sid in set(speech):
                repeat, size, limit = self.special.get(sid, self.default)
                run = 0
                for i in reversed(speech):
                    if i != sid:
                        break
                    run += 1
                if run >= repeat or speech[-size:].count(sid) >= limit:
                    scores[row, self.vocab + sid] = float("-inf")
        return scores


def _in_text_phase(input_ids: torch.LongTensor, vocab: int, im_end_id: int) -> torch.Tensor:
    """(B,) True where no ``<|im_end|>`` and no speech id was generated yet."""
    return ((input_ids < vocab) & (input_ids != im_end_id)).all(dim=1)


def _num_speech(input_ids: torch.LongTensor, vocab: int) -> torch.Tensor:
    """(B,) speech-phase ids so far: after the text phase only speech ids can come."""
    return (input_ids >= vocab).sum(dim=1)


class ForceTextEndLogitsProcessor(LogitsProcessor):
    """Force ``<|im_end|>`` once a row has generated ``max_text_tokens`` text ids without it.

    Ends the text phase of S2S within a budget (the reference instead crashes when no
    ``<|im_end|>`` comes); the fixture's harness does the same with ``max_text_tokens=20``.
    """

    def __init__(self, max_text_tokens: int, text_vocab_size: int, im_end_id: int = IM_END_ID):
        self.max_text_tokens = max_text_tokens
        self.vocab = text_vocab_size
        self.im_end_id = im_end_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] < self.max_text_tokens:
            return scores
        rows = _in_text_phase(input_ids, self.vocab, self.im_end_id).nonzero().flatten()
        for row in rows.tolist():
            _mask_all_but(scores, row, [self.im_end_id])
        return scores


class SpeechBudgetCriteria(StoppingCriteria):
    """Stop a row after ``max_speech_tokens`` speech-phase ids."""

    def __init__(self, max_speech_tokens: int, text_vocab_size: int):
        self.max_speech_tokens = max_speech_tokens
        self.vocab = text_vocab_size

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs):
        return _num_speech(input_ids, self.vocab) >= self.max_speech_tokens


class TextBudgetCriteria(StoppingCriteria):
    """Stop a row that is still in its text phase after ``max_text_tokens`` ids."""

    def __init__(self, max_text_tokens: int, text_vocab_size: int, im_end_id: int = IM_END_ID):
        self.max_text_tokens = max_text_tokens
        self.vocab = text_vocab_size
        self.im_end_id = im_end_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs):
        if input_ids.shape[1] < self.max_text_tokens:
            return input_ids.new_zeros(input_ids.shape[0], dtype=torch.bool)
        return _in_text_phase(input_ids, self.vocab, self.im_end_id)


class SpeechEndCriteria(StoppingCriteria):
    """Stop at the end-of-speech marker of the speech phase: a marker that is not the first
    speech id, so a reply that starts without the start marker still ends at its end marker
    (the reference's rule: ``decoding_quirks.ReferenceSpeechEndCriteria``)."""

    def __init__(self, marker_id: int, text_vocab_size: int):
        self.marker = marker_id
        self.vocab = text_vocab_size

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs):
        return (input_ids[:, -1] == self.marker) & (_num_speech(input_ids, self.vocab) > 1)


def _finite_count(scores: torch.Tensor) -> int:
    """The largest number of finite entries in a row of ``scores``."""
    return int(torch.isfinite(scores).sum(dim=-1).max())


class FiniteTopPLogitsWarper(TopPLogitsWarper):
    """transformers' top-p warper, sorting only the finite entries of each row.

    After top-k (or with one head inactive) most of a 156033-wide row is ``-inf``, and
    transformers' warper sorts all of it every step (~7-11 ms on a CPU core). Here the
    finite entries are gathered first (``topk`` over their count) and the parent's rule runs
    on them; ``-inf`` entries have probability 0 either way, so the kept set is the same.
    """

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        count = _finite_count(scores)
        if count * 2 > scores.shape[-1]:
            return super().__call__(input_ids, scores)
        values, index = scores.topk(max(count, self.min_tokens_to_keep), dim=-1)
        kept = super().__call__(input_ids, values)
        return torch.full_like(scores, self.filter_value).scatter_(-1, index, kept)


def sample(scores: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """(B,) ids drawn from ``softmax(scores)``, over the finite entries only when they are
    few (after top-k): the same distribution without a 156033-wide softmax and draw."""
    count = _finite_count(scores)
    if count * 2 > scores.shape[-1]:
        return torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator)[:, 0]
    values, index = scores.topk(max(count, 1), dim=-1)
    draw = torch.multinomial(torch.softmax(values, dim=-1), 1, generator=generator)
    return index.gather(-1, draw)[:, 0]
