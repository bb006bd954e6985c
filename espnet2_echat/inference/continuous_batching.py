"""Continuous batching: decode the requests of many clients together, one step at a time.

A server that decodes one request at a time reads every weight of the LLM once per token of
one client; batching the clients' decode steps reads them once per step for all of them.
Requests arrive and finish at different times, so the batch is *continuous*: a new request is
prefilled alone and joins the batch at the next decode step, a finished one leaves at once,
and nobody waits for the slowest member of a fixed batch.

Why this is written here rather than taken from a serving framework: vLLM, TGI and
transformers' continuous-batching ``generate_batch`` schedule plain causal LMs, while a row
of this model switches output head and input table mid-reply (text -> speech,
docs/decoding.md#two-phase-decoding), runs per-task logits processors and stopping rules
(:class:`~espnet2_echat.inference.decoder.DecodePlan`), and decodes with this project's lean
KV cache. What this module adds is the bookkeeping of rows joining and leaving; every step
reuses the decoder's own pieces (``head_scores``, ``greedy_ids``, ``sample``, ``embed_step``,
the plan's processors and criteria), so a row decodes exactly as
:func:`~espnet2_echat.inference.decoder.iter_generate` would decode it alone (tested in
``tests/inference/test_server.py``).

Cache layout: one :class:`~espnet2_echat.models.lean_decoder.LeanKVCache` holds every active
row *right-aligned* (each row's positions end at the shared column ``cache.length``; the
columns left of a shorter row are masked out), so a step writes one column for all rows at
once. When the membership changes the rows are re-gathered into a cache as wide as the
longest row (plus ``headroom`` columns for the next steps), which also drops padding left
behind by rows that finished.
"""

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, List, Optional

import torch

from espnet2_echat.inference.decoder import (
    DecodePlan,
    Phase,
    embed_step,
    greedy_ids,
    head_scores,
)
from espnet2_echat.inference.logits_processors import sample
from espnet2_echat.models.lean_decoder import LeanKVCache
from espnet2_echat.models.speech_llm import SpeechLLM

_END = object()  # end of a token stream


@dataclass
class DecodeJob:
    """What one request decodes: a batch-1 prefill (as ``models.splice.pack`` makes it), its
    plan and sampling generator, and ``context``: anything the caller wants back with it."""

    inputs_embeds: torch.Tensor  # (1, P, H)
    attention_mask: torch.Tensor  # (1, P)
    position_ids: torch.Tensor  # (1, P)
    plan: DecodePlan
    generator: Optional[torch.Generator] = None
    context: Any = None


class TokenStream:
    """The ids one request generates, in order (iterate it); raises the request's error.

    ``job`` is set once the scheduler has prepared the request (before its first id).
    ``batch_sizes`` records the batch size of every step the request took part in.
    """

    def __init__(self, prepare: Callable[[], DecodeJob]):
        self.prepare = prepare
        self.job: Optional[DecodeJob] = None
        self.batch_sizes: List[int] = []
        self._queue: "queue.Queue[Any]" = queue.Queue()
        self.cancelled = threading.Event()

    def put(self, item: Any) -> None:
        self._queue.put(item)

    def __iter__(self) -> Iterator[int]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def cancel(self) -> None:
        """Stop decoding this request (a client went away); its row leaves at the next step."""
        self.cancelled.set()


@dataclass
class _Row:
    stream: TokenStream
    job: DecodeJob
    cache: LeanKVCache  # where its keys/values are now (right-aligned at cache.length)
    index: int  # its row in ``cache``
    length: int  # positions cached for it
    position: int  # RoPE position of its next input
    hidden: torch.Tensor  # (H,) last hidden state, the input of the next head
    phase: int
    ids: List[int] = field(default_factory=list)


class ContinuousBatcher:
    """Decode submitted requests together; a new one joins at the next step.

    Args:
        llm: the speech LLM, decoding with the lean KV cache (Qwen2/Llama families).
        max_batch: rows decoded together at most; more requests wait for a free row.
        headroom: cache columns allocated beyond the longest row at each re-gather.

    Use :meth:`submit` from any thread and :meth:`start` a background loop, or call
    :meth:`step` yourself (tests do, to control when a request joins).
    """

    def __init__(self, llm: SpeechLLM, max_batch: int = 8, headroom: int = 64):
        if max_batch < 1 or headroom < 1:
            raise ValueError(f"expected max_batch >= 1 and headroom >= 1, got {max_batch}, {headroom}")
        self.llm = llm
        self.max_batch = max_batch
        self.headroom = headroom
        self.rows: List[_Row] = []
        self.cache: Optional[LeanKVCache] = None
        self.steps = 0
        self.peak_batch = 0  # most rows decoded together in one step so far
        self._waiting: "queue.Queue[TokenStream]" = queue.Queue()
        self._wake = threading.Condition()
        self._closed = False
        self._thread: Optional[threading.Thread] = None

    # ---------------------------------------------------------------- public
    def submit(self, prepare: Callable[[], DecodeJob]) -> TokenStream:
        """Queue a request; ``prepare`` runs on the scheduler's thread when the request is
        admitted (encode its audio, build its prompt and plan) and its errors go to the
        returned stream only."""
        stream = TokenStream(prepare)
        self._waiting.put(stream)
        with self._wake:
            self._wake.notify()
        return stream

    def start(self) -> "ContinuousBatcher":
        """Run :meth:`step` on a background thread until :meth:`close`."""
        self._thread = threading.Thread(target=self._loop, name="echat-batcher", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the background loop; requests still decoding get an error."""
        self._closed = True
        with self._wake:
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for row in self.rows:
            row.stream.put(RuntimeError("the server is shutting down"))
        self.rows = []

    @property
    def busy(self) -> bool:
        """Whether anything is decoding or waiting to join."""
        return bool(self.rows) or not self._waiting.empty()

    @torch.no_grad()
    def step(self) -> int:
        """Admit waiting requests (up to ``max_batch`` rows), then decode one id for every row.

        Returns the number of rows that took part in the step (0: nothing to do).
        """
        joined = self._admit()
        if joined:
            self._regather(self.rows)
        if not self.rows:
            return 0
        size = len(self.rows)
        self.steps += 1
        self.peak_batch = max(self.peak_batch, size)
        phase = torch.tensor([r.phase for r in self.rows], device=self.rows[0].hidden.device)
        kinds = set(phase.tolist())
        raw = head_scores(self.llm, torch.stack([r.hidden for r in self.rows]), phase, kinds)
        chosen, keep = [], []
        for i, row in enumerate(self.rows):
            token, scores = self._choose(row, raw[i : i + 1])
            row.stream.batch_sizes.append(size)
            row.stream.put(token)
            chosen.append(token)
            if self._finished(row, token, scores):
                row.stream.put(_END)
            else:
                keep.append(i)
        step_kinds = {self.rows[i].phase for i in keep}
        for i in keep:  # <|im_end|> ends the text: the row continues with speech only
            row = self.rows[i]
            if row.phase != Phase.SPEECH and chosen[i] == row.job.plan.im_end_id:
                row.phase = int(Phase.SPEECH)
        if len(keep) < size:
            self._regather([self.rows[i] for i in keep])
        if self.rows:
            self._forward([chosen[i] for i in keep], step_kinds)
        return size

    # ---------------------------------------------------------------- internals
    def _loop(self) -> None:
        while not self._closed:
            with self._wake:
                while not self._closed and not self.busy:
                    self._wake.wait()
            if self._closed:
                return
            try:
                self.step()
            except Exception as e:  # a model error ends every row, not the server
                logging.exception("decoding step failed")
                for row in self.rows:
                    row.stream.put(RuntimeError(f"decoding failed: {e}"))
                self.rows, self.cache = [], None

    def _admit(self) -> bool:
        """Prefill waiting requests alone while rows are free; True if any joined."""
        joined = False
        while len(self.rows) < self.max_batch:
            try:
                stream = self._waiting.get_nowait()
            except queue.Empty:
                break
            if stream.cancelled.is_set():
                stream.put(_END)
                continue
            try:
                job = stream.prepare()
                stream.job = job
                self.rows.append(self._prefill(stream, job))
                joined = True
            except Exception as e:  # this request's fault (bad audio, too long, ...)
                stream.put(e)
        return joined

    def _prefill(self, stream: TokenStream, job: DecodeJob) -> _Row:
        embeds = job.inputs_embeds
        if embeds.shape[0] != 1:
            raise ValueError(f"a DecodeJob holds one request, got a batch of {embeds.shape[0]}")
        length = embeds.shape[1]
        cache = self.llm.new_cache(1, length, embeds.dtype, embeds.device)
        if not isinstance(cache, LeanKVCache):
            raise TypeError(
                "continuous batching needs the lean KV cache (Qwen2/Llama-family LLMs); "
                f"{type(self.llm.causal_lm).__name__} decodes through transformers' forward"
            )
        out = self.llm.hidden_states(embeds, job.attention_mask, job.position_ids, cache, True)
        return _Row(
            stream,
            job,
            cache,
            0,
            length,
            int(job.position_ids[0, -1]) + 1,
            out.last_hidden_state[0, -1],
            int(job.plan.start_phase),
        )

    @staticmethod
    def _choose(row: _Row, raw: torch.Tensor):
        """The row's next id from its (1, V + S) raw scores, as ``iter_generate`` chooses it,
        and the processed scores (what its stopping criteria see)."""
        plan = row.job.plan
        generated = torch.tensor([row.ids], dtype=torch.long, device=raw.device)
        scores = raw
        for processor in plan.logits_processor:
            scores = processor(generated, scores)
        ids = sample(scores, row.job.generator) if plan.do_sample else greedy_ids(scores)
        token = int(ids[0])
        row.ids.append(token)
        return token, scores

    @staticmethod
    def _finished(row: _Row, token: int, scores: torch.Tensor) -> bool:
        plan = row.job.plan
        if row.stream.cancelled.is_set() or len(row.ids) >= plan.max_steps:
            return True
        if token in plan.eos_ids:
            return True
        generated = torch.tensor([row.ids], dtype=torch.long, device=scores.device)
        return bool(plan.stopping_criteria(generated, scores)[0])

    def _regather(self, rows: List[_Row]) -> None:
        """Copy ``rows``' keys/values into one right-aligned cache (batch = len(rows))."""
        self.rows = rows
        if not rows:
            self.cache = None
            return
        width = max(r.length for r in rows)
        first = rows[0].cache
        dtype, device = first.keys[0].dtype, first.keys[0].device
        cache = self.llm.new_cache(len(rows), width + self.headroom, dtype, device)
        for layer in range(len(cache.keys)):
            for b, row in enumerate(rows):
                src, end, pad = row.cache, row.cache.length, width - row.length
                for dst, old in ((cache.keys[layer], src.keys[layer]), (cache.values[layer], src.values[layer])):
                    # masked columns must hold numbers: attention weighs them by 0, and 0 * NaN
                    # from uninitialised memory would be NaN
                    dst[b, :, :pad].zero_()
                    dst[b, :, pad:width] = old[row.index, :, end - row.length : end]
        cache.length = width
        for b, row in enumerate(rows):
            row.cache, row.index = cache, b
        self.cache = cache

    def _forward(self, ids: List[int], kinds: set) -> None:
        """Feed every row its chosen id and keep the new hidden states."""
        if self.cache.length + 1 > self.cache.max_len:
            self._regather(self.rows)  # out of columns: re-gather with fresh headroom
        cache, rows = self.cache, self.rows
        device = rows[0].hidden.device
        new = embed_step(self.llm, torch.tensor(ids, device=device), kinds)
        new = new.to(cache.keys[0].dtype)
        positions = torch.tensor([[r.position] for r in rows], device=device)
        mask = None  # every row as long as the cache: one query over all keys needs none
        if any(r.length < cache.length for r in rows):
            lengths = torch.tensor([r.length + 1 for r in rows], device=device)
            columns = torch.arange(cache.length + 1, device=device)
            mask = (columns[None, :] >= cache.length + 1 - lengths[:, None]).long()
        out = self.llm.hidden_states(new, mask, positions, cache, True).last_hidden_state
        for b, row in enumerate(rows):
            row.hidden = out[b, -1]
            row.length += 1
            row.position += 1
