"""KV-cached incremental decoding with text/speech head switching
(docs/decoding.md#two-phase-decoding).

Each row of a batch is in one phase:

* ``TEXT``: logits from the LLM's ``lm_head``; a generated ``<|im_end|>`` is embedded as
  text and then switches the row to ``SPEECH`` (the reference's ``text_phase`` flag);
* ``SPEECH``: logits from ``speech_head``; ids fed back through the speech table;
* ``JOINT``: one softmax over both heads, as in training (interleaved 6-text/18-speech
  models of docs/tasks.md#layouts), until ``<|im_end|>``; then ``SPEECH``.

Scores and ids are *unified*: text ids ``< V``, speech ids ``V + k``; the inactive head's
part of a row is ``-inf``. transformers' ``generate`` cannot switch the output head and
the input table inside one call, so the loop is written here; its logits processors,
warpers and stopping criteria are transformers' interfaces and classes.
"""

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Iterator, List, Optional, Sequence

import torch
from torch import nn
from transformers.generation.logits_process import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
)
from transformers.generation.stopping_criteria import StoppingCriteriaList

from espnet2_echat.data.speech_ids import SpeechIds
from espnet2_echat.data.templates import IM_END_ID
from espnet2_echat.inference import decoding_quirks
from espnet2_echat.inference.logits_processors import (
    AgeForcingLogitsProcessor,
    FiniteTopPLogitsWarper,
    ForceTextEndLogitsProcessor,
    MinNewTokensLogitsProcessor,
    SpeechBudgetCriteria,
    SpeechEndCriteria,
    SpeechNGramBlockingLogitsProcessor,
    TextBudgetCriteria,
    sample,
)
from espnet2_echat.inference.settings import DecodingOptions
from espnet2_echat.models.speech_llm import SpeechLLM


class Phase(IntEnum):
    TEXT = 0
    SPEECH = 1
    JOINT = 2


@dataclass
class Step:
    """One decoding step of a batch."""

    ids: torch.Tensor  # (B,) unified ids chosen at this step (pad where not active)
    phase: torch.Tensor  # (B,) Phase whose head produced ``ids``
    active: torch.Tensor  # (B,) bool, rows that were still decoding at this step
    finished: torch.Tensor  # (B,) bool, rows that stopped with this step
    raw_scores: Optional[torch.Tensor]  # (B, V + S) logits before the processors, if kept


@dataclass
class Generation:
    """What :func:`generate` returns per row."""

    ids: List[List[int]]  # unified ids, stop id included
    phases: List[List[int]]  # Phase of each id
    scores: Optional[List[List[torch.Tensor]]] = None  # raw (V + S) logits per id


@dataclass(frozen=True)
class DecodePlan:
    """How one task decodes: start phase, stop ids and the processors its options imply."""

    start_phase: Phase
    eos_ids: Sequence[int]
    logits_processor: LogitsProcessorList
    stopping_criteria: StoppingCriteriaList
    do_sample: bool
    max_steps: int
    im_end_id: int = IM_END_ID  # the tokenizer's <|im_end|>: ends the text phase


def build_plan(
    task_kind: str,
    options: DecodingOptions,
    speech_ids: SpeechIds,
    reference_compat: bool = False,
    logits_processor: Optional[Sequence] = None,
    stopping_criteria: Optional[Sequence] = None,
    im_end_id: int = IM_END_ID,
) -> DecodePlan:
    """Turn ``options`` into processors and criteria for ``task_kind`` ``text|s2s|tts|joint``.

    ``im_end_id``: the tokenizer's ``<|im_end|>`` (Qwen2.5's by default).
    ``reference_compat``: the ``s2s_stop_at_text_budget`` switch, the reference's stop rules
    (``decoding_quirks.use_reference_stops``).

    Order: min length, repetition penalty, task constraints, the caller's
    ``logits_processor``, then the sampling warpers (as transformers orders them).
    """
    vocab = speech_ids.text_vocab_size
    marker = speech_ids.joint_marker
    start = {"text": Phase.TEXT, "s2s": Phase.TEXT, "tts": Phase.SPEECH, "joint": Phase.JOINT}
    if task_kind not in start:
        raise ValueError(f"task_kind must be one of {sorted(start)}, got {task_kind!r}")
    eos = {"text": [im_end_id], "tts": [marker], "s2s": [], "joint": []}[task_kind]
    procs = LogitsProcessorList()
    if options.min_new_tokens > 0 and eos:
        procs.append(MinNewTokensLogitsProcessor(options.min_new_tokens, eos))
    if options.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(options.repetition_penalty))
    if options.age_forcing:
        procs.append(AgeForcingLogitsProcessor())
    if options.speech_ngram_blocking:
        procs.append(SpeechNGramBlockingLogitsProcessor(vocab))
    criteria = StoppingCriteriaList()
    if task_kind == "s2s":
        procs.append(ForceTextEndLogitsProcessor(options.max_new_tokens, vocab, im_end_id))
    elif task_kind in ("text", "joint"):
        criteria.append(TextBudgetCriteria(options.max_new_tokens, vocab, im_end_id))
    if task_kind in ("s2s", "joint"):
        criteria.append(SpeechEndCriteria(marker, vocab))
    if task_kind != "text":
        criteria.append(SpeechBudgetCriteria(options.max_new_speech_tokens, vocab))
    if reference_compat:
        decoding_quirks.use_reference_stops(
            task_kind, procs, criteria, options.max_new_tokens, speech_ids, im_end_id
        )
    procs.extend(logits_processor or [])
    criteria.extend(stopping_criteria or [])
    if options.do_sample:
        if options.temperature != 1.0:
            procs.append(TemperatureLogitsWarper(options.temperature))
        if options.top_k > 0:
            procs.append(TopKLogitsWarper(options.top_k))
        if options.top_p < 1.0:
            procs.append(FiniteTopPLogitsWarper(options.top_p))
    return DecodePlan(
        start[task_kind],
        eos,
        procs,
        criteria,
        options.do_sample,
        options.max_new_tokens + options.max_new_speech_tokens + 1,
        im_end_id,
    )


def head_scores(
    llm: SpeechLLM, hidden: torch.Tensor, phase: torch.Tensor, kinds: Optional[set] = None
) -> torch.Tensor:
    """(B, V + S) float32 logits: text head where TEXT, speech head where SPEECH, both where
    JOINT, ``-inf`` elsewhere. Each head runs only on the rows that need it. ``kinds`` is
    the set of phases present (computed from ``phase`` if not given)."""
    vocab = llm.text_vocab_size
    inf = float("-inf")
    kinds = set(phase.tolist()) if kinds is None else kinds
    if kinds == {Phase.TEXT}:  # the common cases: one head for the whole batch
        return nn.functional.pad(
            llm.text_logits(hidden).float(), (0, llm.speech_token_num), value=inf
        )
    if kinds == {Phase.SPEECH}:
        return nn.functional.pad(llm.speech_logits(hidden).float(), (vocab, 0), value=inf)
    out = hidden.new_full((hidden.shape[0], llm.ids.joint_size), inf).float()
    text_rows = (phase != Phase.SPEECH).nonzero().flatten()
    speech_rows = (phase != Phase.TEXT).nonzero().flatten()
    if len(text_rows):
        out[text_rows, :vocab] = llm.text_logits(hidden[text_rows]).float()
    if len(speech_rows):
        out[speech_rows, vocab:] = llm.speech_logits(hidden[speech_rows]).float()
    return out


GREEDY_BLOCK = 4096  # columns per block of greedy_ids' first pass


def greedy_ids(scores: torch.Tensor) -> torch.Tensor:
    """``scores.argmax(-1)`` (first maximum on ties, NaN counts as the maximum), faster on CPU.

    torch's CPU argmax reduces a 156033-wide row with a scalar loop (~130 us a row), while
    ``amax`` is vectorised (~10 us). So: the maximum of every block of ``GREEDY_BLOCK``
    columns (the columns after the last whole block are one more block), and argmax inside
    the first block holding the row's maximum only.
    """
    rows, width = scores.shape
    blocks = width // GREEDY_BLOCK
    if scores.device.type != "cpu" or blocks < 2:
        return scores.argmax(dim=-1)
    if scores.stride(-1) != 1:
        scores = scores.contiguous()
    lead = blocks * GREEDY_BLOCK
    tiles = scores.as_strided((rows, blocks, GREEDY_BLOCK), (scores.stride(0), GREEDY_BLOCK, 1))
    best, block = tiles.amax(dim=-1).max(dim=-1)  # the first block holding the maximum
    best, block = best.tolist(), block.tolist()
    tail = scores[:, lead:].amax(dim=-1).tolist() if lead < width else [None] * rows
    ids = []
    for row in range(rows):
        start, stop = block[row] * GREEDY_BLOCK, (block[row] + 1) * GREEDY_BLOCK
        if tail[row] is not None and (
            tail[row] > best[row] or (math.isnan(tail[row]) and not math.isnan(best[row]))
        ):
            start, stop = lead, width
        ids.append(start + int(scores[row, start:stop].argmax()))
    return torch.tensor(ids, device=scores.device)


def embed_step(llm: SpeechLLM, ids: torch.Tensor, kinds: set) -> torch.Tensor:
    """(B, 1, H) embeddings of one step's unified ids; ``kinds``: the phases that chose them
    (one table lookup when they are all text or all speech; inactive rows hold any id)."""
    if kinds == {Phase.TEXT}:
        return llm.embed_text(ids[:, None])
    if kinds == {Phase.SPEECH}:
        return llm.speech_embedding((ids[:, None] - llm.ids.text_vocab_size).clamp(min=0))
    return llm.embed(ids[:, None])


@torch.no_grad()
def iter_generate(
    llm: SpeechLLM,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    plan: DecodePlan,
    use_cache: bool = True,
    generator: Optional[torch.Generator] = None,
    pad_id: int = 0,
    keep_raw_scores: bool = False,
) -> Iterator[Step]:
    """Decode a left-padded batch of prefills step by step, yielding every :class:`Step`.

    ``use_cache=False`` recomputes the whole sequence every step (for checking the cache).
    ``keep_raw_scores`` keeps each step's logits before the processors in ``Step.raw_scores``
    (otherwise it is None).
    """
    batch = inputs_embeds.shape[0]
    device = inputs_embeds.device
    phase = torch.full((batch,), int(plan.start_phase), dtype=torch.long, device=device)
    generated = torch.zeros((batch, 0), dtype=torch.long, device=device)
    active = torch.ones(batch, dtype=torch.bool, device=device)
    eos = torch.tensor(list(plan.eos_ids), dtype=torch.long, device=device)
    eos_ids, all_active = set(plan.eos_ids), True
    cache = None
    if use_cache:
        max_len = inputs_embeds.shape[1] + plan.max_steps + 1
        cache = llm.new_cache(batch, max_len, inputs_embeds.dtype, device)
    unpadded = bool(attention_mask.all())
    embeds, mask, positions = inputs_embeds, attention_mask, position_ids
    hidden = llm.hidden_states(embeds, mask, positions, cache, use_cache).last_hidden_state
    for _ in range(plan.max_steps):
        kinds = set(phase.tolist())
        raw = head_scores(llm, hidden[:, -1], phase, kinds)
        scores = raw.clone() if keep_raw_scores else raw
        # called one by one: LogitsProcessorList inspects every processor's signature on
        # every step (~20 us each), to pass keyword arguments these processors do not take
        for processor in plan.logits_processor:
            scores = processor(generated, scores)
        if plan.do_sample:
            ids = sample(scores, generator)
        else:
            ids = greedy_ids(scores)
        if not all_active:
            ids = torch.where(active, ids, pad_id)
        ids_list = ids.tolist()
        step_phase = phase  # phase is replaced below, never changed in place
        generated = torch.cat([generated, ids[:, None]], dim=1)
        if plan.im_end_id in ids_list:
            # <|im_end|> ends the text: TEXT rows switch head and table, JOINT rows
            # (interleaved) continue with speech only.
            switch = (phase != Phase.SPEECH) & (ids == plan.im_end_id)
            phase = torch.where(switch, int(Phase.SPEECH), phase)
        finished = plan.stopping_criteria(generated, scores)
        if not eos_ids.isdisjoint(ids_list):
            finished = finished | (ids[:, None] == eos).any(dim=1)
        if not all_active:
            finished = finished & active
        yield Step(ids, step_phase, active, finished, raw if keep_raw_scores else None)
        if finished.any():
            active = active & ~finished
            all_active = False
            if not active.any():
                return
        new = embed_step(llm, ids, kinds).to(inputs_embeds.dtype)
        next_pos = positions[:, -1:] + 1
        if use_cache and unpadded:
            # one query over the cached keys: without padding no mask is needed at all
            hidden = llm.hidden_states(new, None, next_pos, cache, True).last_hidden_state
            positions = next_pos
            continue
        mask = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
        if use_cache:
            hidden = llm.hidden_states(new, mask, next_pos, cache, True).last_hidden_state
        else:
            embeds = torch.cat([embeds, new], dim=1)
            positions = torch.cat([positions, next_pos], dim=1)
            hidden = llm.hidden_states(embeds, mask, positions).last_hidden_state
            continue
        positions = next_pos


def generate(
    llm: SpeechLLM,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    plan: DecodePlan,
    use_cache: bool = True,
    generator: Optional[torch.Generator] = None,
    output_scores: bool = False,
) -> Generation:
    """Run :func:`iter_generate` to the end and collect each row's ids and heads."""
    batch = inputs_embeds.shape[0]
    out = Generation([[] for _ in range(batch)], [[] for _ in range(batch)])
    if output_scores:
        out.scores = [[] for _ in range(batch)]
    steps = iter_generate(
        llm,
        inputs_embeds,
        attention_mask,
        position_ids,
        plan,
        use_cache,
        generator,
        keep_raw_scores=output_scores,
    )
    for step in steps:
        active, ids, phases = step.active.tolist(), step.ids.tolist(), step.phase.tolist()
        for row in range(batch):
            if active[row]:
                out.ids[row].append(ids[row])
                out.phases[row].append(phases[row])
                if output_scores:
                    out.scores[row].append(step.raw_scores[row])
    return out
