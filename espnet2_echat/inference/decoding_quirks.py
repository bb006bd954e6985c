"""The reference's decoding behaviours that this package fixes, in one place.

Each function is what the original OSUM-EChat code does where a switch of
``data/quirks.py::ReferenceQuirks`` asks for it (docs/differences.md); the default decoding
path calls one of them only when its switch is on:

* ``reference_decoding_defaults``: :func:`reference_options` (``settings.default_options``);
* ``reference_parsing``: :func:`reference_parse` (``parsing.parse_generation``) and
  :func:`remembered_reply` (what a :class:`Conversation` keeps of an S2S reply).

The stop rule of ``s2s_stop_at_text_budget`` lives with the other stopping criteria
(``decoder.build_plan``, ``logits_processors.SpeechEndCriteria``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import List, Optional, Sequence, Tuple

from espnet2_echat.data.speech_ids import SpeechIds


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
