"""The LLM with its speech-token embedding and speech head beside it (docs/model.md#speech-ids)."""

import logging
from typing import Optional, Sequence

import torch
from torch import nn
from transformers import DynamicCache, PreTrainedModel

from espnet2_echat.data.speech_ids import SpeechIds
from espnet2_echat.models.causal_lm import text_vocab_size
from espnet2_echat.models.packed_linear import PackedWeight, packing_available
from espnet2_echat.models.split_linear import split_linear
from espnet2_echat.models.step_capture import StepCapture, captured_length
from espnet2_echat.models.text_row_deltas import TextRowDeltas
from espnet2_echat.models.lean_decoder import (
    LeanKVCache,
    lean_forward,
    new_lean_cache,
    lean_decoding_blocker,
)


class SpeechLLM(nn.Module):
    """A causal LM that reads and writes text ids and speech-token ids.

    Ids live in one joint space, described by ``self.ids``
    (:class:`espnet2_echat.data.speech_ids.SpeechIds`): text ids ``0 .. V-1``, speech-table
    id ``k`` is ``V + k``. The speech table holds the K speech tokens, the begin/end marker
    and the two audio-input markers; the speech head predicts the tokens and the marker.
    Training uses one softmax over ``lm_head ⊕ speech_head``; decoding uses one head at a
    time.

    Args:
        causal_lm: the transformers causal LM.
        speech_token_num: the config's speech-head size (K+1).
        trainable_text_ids: text ids whose input/output rows train even when the LLM is
            frozen (the added tags; :mod:`espnet2_echat.models.text_row_deltas`).
    """

    def __init__(
        self,
        causal_lm: PreTrainedModel,
        speech_token_num: int,
        trainable_text_ids: Sequence[int] = (),
    ):
        super().__init__()
        self.causal_lm = causal_lm
        hidden = causal_lm.get_input_embeddings().weight.shape[1]
        self.ids = SpeechIds.from_config(speech_token_num, text_vocab_size(causal_lm))
        dtype = causal_lm.get_input_embeddings().weight.dtype
        self.speech_embedding = nn.Embedding(self.ids.table_size, hidden, dtype=dtype)
        self.speech_head = nn.Linear(hidden, self.ids.speech_token_num, dtype=dtype)
        tied = causal_lm.get_output_embeddings().weight is causal_lm.get_input_embeddings().weight
        self.text_row_deltas = (
            TextRowDeltas(trainable_text_ids, hidden, tied, dtype) if trainable_text_ids else None
        )
        self.head_parts = 1  # set by use_column_major_weights on CPU
        self.packed_head: Optional[PackedWeight] = None  # idem: the batch-step layout
        self._fallback_reported = False
        self.capture_step = False  # see enable_step_capture
        self._captures = {}  # device type -> StepCapture

    @property
    def speech_token_num(self) -> int:
        """Rows of the speech head (K+1)."""
        return self.ids.speech_token_num

    @property
    def text_vocab_size(self) -> int:
        """V, the text ids of the joint space."""
        return self.ids.text_vocab_size

    @property
    def speech_eos_id(self) -> int:
        """The begin/end-of-speech marker (4096 in the released model), speech-table id."""
        return self.ids.marker

    @property
    def audio_bos_id(self) -> int:
        return self.ids.audio_bos

    @property
    def audio_eos_id(self) -> int:
        return self.ids.audio_eos

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Embed unified ids (text < V, speech-table >= V) of any shape."""
        is_speech = ids >= self.text_vocab_size
        text = self.embed_text(torch.where(is_speech, 0, ids))
        speech = self.speech_embedding(torch.where(is_speech, ids - self.text_vocab_size, 0))
        return torch.where(is_speech[..., None], speech, text)

    def embed_text(self, ids: torch.Tensor) -> torch.Tensor:
        """Embed text ids (< V) of any shape."""
        text = self.causal_lm.get_input_embeddings()(ids)
        if self.text_row_deltas is None:
            return text
        return self.text_row_deltas.embed(ids, text)

    def has_trainable_embedding(self, ids: torch.Tensor) -> torch.Tensor:
        """Mask of the unified ids (and audio placeholders, < 0) whose input embedding is a
        trained parameter outside the LLM: speech-table ids and ids of trainable text rows."""
        mask = (ids < 0) | (ids >= self.text_vocab_size)
        if self.text_row_deltas is not None:
            mask |= self.text_row_deltas.contains(ids)
        return mask

    def new_cache(self, batch: int, max_len: int, dtype: torch.dtype, device):
        """A KV cache for decoding: the lean preallocated one where the LLM supports it.

        An LLM the lean forward cannot run decodes through transformers' forward (slower,
        same function); that is logged once per model with the reason, never silent.
        """
        if torch.is_grad_enabled():
            return DynamicCache()
        blocker = lean_decoding_blocker(self.causal_lm)
        if blocker is None and self.capture_step:
            device_type = torch.device(device).type
            if device_type not in self._captures:  # building one sets up torch.compile: ms
                self._captures[device_type] = StepCapture(device_type)
            capture = self._captures[device_type]
            cache = new_lean_cache(
                self.causal_lm, batch, captured_length(max_len), dtype, device, zeroed=True
            )
            capture.prepare(cache)
            return cache
        if blocker is None:
            return new_lean_cache(self.causal_lm, batch, max_len, dtype, device)
        if not self._fallback_reported:
            logging.warning(
                "%s decodes with transformers' forward, not the lean decoder: %s",
                type(self.causal_lm).__name__,
                blocker,
            )
            self._fallback_reported = True
        return DynamicCache()

    def enable_step_capture(self, enable: bool = True) -> None:
        """Run decode steps through a compiled step (``torch.compile``; CUDA graphs on CUDA),
        :mod:`espnet2_echat.models.step_capture`. The first step of each (batch size, cache
        length bucket) compiles, which takes seconds to tens of seconds on CPU; later steps
        and decodes of the same shapes reuse it. LLMs the lean decoder cannot run are not
        affected (they decode through transformers' forward)."""
        self.capture_step = enable

    def hidden_states(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
        past_key_values=None,
        use_cache: bool = False,
    ):
        """Run the transformer body; returns the base model output (last hidden = post-norm)."""
        if isinstance(past_key_values, LeanKVCache):
            return lean_forward(
                self.causal_lm, inputs_embeds, attention_mask, position_ids, past_key_values
            )
        body = self.causal_lm.get_decoder()
        return body(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
        )

    def text_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self._frozen_text_logits(hidden)
        if self.text_row_deltas is None:
            return logits
        return self.text_row_deltas.logits(hidden, logits)

    def _frozen_text_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        head = self.causal_lm.get_output_embeddings()
        decode_step = hidden.dim() == 2 and hidden.shape[0] <= 16  # BLAS threads larger ones
        plain = type(head) is nn.Linear and head.bias is None and hidden.device.type == "cpu"
        if decode_step and plain and not torch.is_grad_enabled():
            # the layout by batch size: one row, column blocks read by every thread; a few
            # rows, a copy packed once for oneDNN (MKL re-packs the weight on every call)
            batched = hidden.shape[0] > 1 and hidden.dtype == torch.float32
            if batched and self.packed_head is not None:
                return self.packed_head.linear(hidden, head.weight)
            if self.head_parts > 1:
                return split_linear(hidden, head.weight, self.head_parts)
        return head(hidden)

    def use_column_major_weights(self) -> None:
        """Store every Linear weight of the LLM and the heads column-major (same values).

        On CPU a matrix-vector product over ``nn.Linear``'s row-major (out, in) weight runs
        at about half the memory bandwidth of the column-major layout (measured in
        ``benchmarks/decode_speed.py``), and a decode step is a chain of matrix-vector
        products that read every weight once. Parameter objects are kept, so the tied input
        embedding follows the output head. For inference: call it after loading weights.

        BLAS runs each such product on one thread, so the text head, the largest weight a
        step reads, is also split into ``torch.get_num_threads()`` column blocks computed in
        parallel (``espnet2_echat.models.split_linear``; the lean decoder does the same for
        the body's weights). Steps of 2..16 rows read the text head through a copy packed for
        oneDNN instead (``espnet2_echat.models.packed_linear``), made at the first such step.
        """
        for module in [*self.causal_lm.modules(), self.speech_head]:
            if isinstance(module, nn.Linear) and module.weight.is_contiguous():
                module.weight.data = module.weight.data.t().contiguous().t()
        self.head_parts = torch.get_num_threads()
        if packing_available() and self.packed_head is None:
            self.packed_head = PackedWeight()

    def speech_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.speech_head(hidden)

    def joint_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Training logits over ``V + speech_token_num`` classes (speech id k -> V + k)."""
        return torch.cat([self.text_logits(hidden), self.speech_logits(hidden)], dim=-1)
