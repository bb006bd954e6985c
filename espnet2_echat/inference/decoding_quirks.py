"""The reference's decoding behaviours that this package fixes, in one place.

Each function is what the original OSUM-EChat code does where a switch of
``data/quirks.py::ReferenceQuirks`` asks for it (docs/differences.md); the default decoding
path calls one of them only when its switch is on:

* ``reference_decoding_defaults``: :func:`reference_options` (of ``settings.default_options``,
  in ``Speech2Response``);
* ``reference_parsing``: :func:`reference_parse` (``parsing.parse_generation``) and
  :func:`remembered_reply` (what a :class:`Conversation` keeps of an S2S reply);
* ``s2s_stop_at_text_budget``: :func:`use_reference_stops` (``decoder.build_plan``) with
  :class:`ReferenceSpeechEndCriteria`;
* ``reference_instructions``: :func:`reference_instructions` (``Speech2Response``);
* ``token2wav_reference_streaming``: :data:`REFERENCE_STREAMING` (the token2wav options
  ``Speech2Response`` loads its voice with).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from transformers.generation.logits_process import LogitsProcessorList
from transformers.generation.stopping_criteria import StoppingCriteria, StoppingCriteriaList

from espnet2_echat.data.speech_ids import SpeechIds
from espnet2_echat.inference.logits_processors import (
    ForceTextEndLogitsProcessor,
    SpeechEndCriteria,
    TextBudgetCriteria,
)
from espnet2_echat.inference.settings import DEFAULT_INSTRUCTIONS

# Token2wav streaming of the reference: its 34-frame flow cache and first hop of 50 tokens
# (``Token2WavInference`` options; docs/differences.md).
REFERENCE_STREAMING: Dict[str, object] = dict(reference_compat=True, first_token_hop_len=None)


def reference_options(options, task: str, think: str):
    """The reference's decoding options from the fixed ones: its speech n-gram blocker is
    built but never active (S2S), and S2T chat with tag think has no age constraint."""
    if task == "s2s":
        options = replace(options, speech_ngram_blocking=False)
    if task == "s2t_chat" and think == "tag":
        options = replace(options, age_forcing=False)
    return options


def reference_parse(
    ids: Sequence[int], task_kind: str, speech_ids: SpeechIds, im_end_id: int
) -> Optional[Tuple[List[int], List[int], List[int]]]:
    """The reference callers' parsing ``(token_int, text_ids, speech_tokens)``, or None
    where it equals the fixed one (text and joint outputs).

    S2S: the text drops the last id before ``<|im_end|>`` and the speech is
    ``ids[eos + 1 : -1]`` without its first element; TTS drops its last id, whatever those
    ids are (docs/decoding.md#parsing).

    Raises:
        ValueError: S2S output without ``<|im_end|>`` (the reference crashes there).
    """
    ids = list(ids)
    if task_kind == "s2s":
        if im_end_id not in ids:
            raise ValueError(
                f"reference_compat S2S parsing needs <|im_end|> ({im_end_id}) in the output; none "
                f"was generated in {len(ids)} ids (decode without reference_compat, which "
                "forces it after max_new_tokens)"
            )
        eos = ids.index(im_end_id)
        text = [i for i in ids[:eos] if not speech_ids.is_speech(i)]
        speech_res = [speech_ids.speech_id(i) for i in ids[eos + 1 : -1]]
        return text, ids[: max(eos - 1, 0)], speech_res[1:]
    if task_kind == "tts":
        return [], [], speech_ids.speech_ids_of(ids)[:-1]
    return None


def remembered_reply(reply_ids: Sequence[int]) -> List[int]:
    """What the reference's multi-turn state keeps of an S2S reply: its text without the
    last id (the one its parsing drops)."""
    return list(reply_ids)[:-1]


class ReferenceSpeechEndCriteria(StoppingCriteria):
    """The reference's ``S2SStopCriteria``: stop once the generated ids hold more than one
    end-of-speech marker (start + end). A reply whose speech starts without the marker
    therefore runs on past its end marker (the fixed rule: ``SpeechEndCriteria``)."""

    def __init__(self, marker_id: int):
        self.marker = marker_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs):
        return (input_ids == self.marker).sum(dim=1) > 1


def use_reference_stops(
    task_kind: str,
    procs: LogitsProcessorList,
    criteria: StoppingCriteriaList,
    max_text_tokens: int,
    speech_ids: SpeechIds,
    im_end_id: int,
) -> None:
    """Swap the fixed stop rules of a decode plan for the reference's, in place.

    S2S stops at the text budget (``TextBudgetCriteria``) instead of forcing
    ``<|im_end|>`` there and going on to speech (``ForceTextEndLogitsProcessor``); the
    speech phase ends at :class:`ReferenceSpeechEndCriteria` instead of
    ``SpeechEndCriteria`` (docs/differences.md).
    """
    if task_kind == "s2s":
        procs[:] = [p for p in procs if not isinstance(p, ForceTextEndLogitsProcessor)]
        criteria.append(TextBudgetCriteria(max_text_tokens, speech_ids.text_vocab_size, im_end_id))
    criteria[:] = [
        ReferenceSpeechEndCriteria(c.marker) if isinstance(c, SpeechEndCriteria) else c
        for c in criteria
    ]


def reference_instructions() -> Dict[str, str]:
    """The understanding instructions of the reference's inference
    (``settings.DEFAULT_INSTRUCTIONS``), whatever prompt config the model was trained with."""
    return dict(DEFAULT_INSTRUCTIONS)
