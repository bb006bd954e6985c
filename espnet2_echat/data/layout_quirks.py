"""The reference's prompt layouts that differ from training, in one place.

``data/layout.py::LayoutBuilder`` lays out every sequence the way training does; where a
switch of ``data/quirks.py::ReferenceQuirks`` asks for the original code's inference layout,
it calls one function here (docs/differences.md lists them):

* ``understanding_prompt_typo``, ``s2t_think_without_user_start``: :func:`system_variant`;
* ``multiturn_reference_layout``: :func:`history` and :func:`history_prompt`, the layout of
  the reference's ``generate_s2s_no_stream_multi_turn`` (docs/decoding.md#multi-turn);
* ``text_history_doubled_im_end`` (training with past turns as transcripts):
  :func:`after_text_history_user`.

The functions take the ``LayoutBuilder`` (its ``text``/``audio_block``/``turn_parts``) and
import nothing from it.
"""

from __future__ import annotations

from typing import Any, List, Sequence, Tuple

from espnet2_echat.data.quirks import ReferenceQuirks
from espnet2_echat.data.templates import (
    ASSISTANT_START,
    OUTPUT_TYPE_PROMPT,
    TURN_END,
    USER_START,
    system_block,
)


def system_variant(
    name: str, output_type: str, inference: bool, quirks: ReferenceQuirks
) -> Tuple[str, bool]:
    """The system prompt's name and whether the user start follows it.

    Training (and the fixed inference): ``name`` with the user start. The reference's
    inference uses a typo'd understanding prompt (``understanding_prompt_typo``) and S2T
    think without ``<|im_start|>user`` (``s2t_think_without_user_start``).
    """
    if inference and output_type == "text" and quirks.understanding_prompt_typo:
        name = "understand_infer_compat"
    with_user_start = not (
        inference and output_type == "s2t_chat_think" and quirks.s2t_think_without_user_start
    )
    return name, with_user_start


def history(builder, turns: Sequence[Any]) -> Tuple[List[int], List[Any]]:
    """Past turns in the reference's multi-turn inference layout, per turn::

        [bos] <user audio> [eos] P2 <reply ids> [marker speech... marker]

    (no ``<|im_end|>`` closing the assistant turn, no user start between turns).
    """
    ids: List[int] = []
    audios: List[Any] = []
    for turn in turns:
        user, audio, speech = builder.turn_parts(turn, audio_markers=True)
        audios += audio
        ids += user + builder.text(ASSISTANT_START) + list(turn.reply_ids) + speech
    return ids, audios


def history_prompt(builder, output_type: str, turns: Sequence[Any]) -> Tuple[List[int], List[Any]]:
    """The reference's multi-turn prompt: system block without the user start, the past
    turns (:func:`history`), the user start, the current audio block, P2."""
    prompt_name = OUTPUT_TYPE_PROMPT.get(output_type, "fallback")
    ids = builder.text(system_block(prompt_name, with_user_start=False))
    hist, audios = history(builder, turns)
    ids += hist + builder.text(USER_START) + builder.audio_block() + builder.text(ASSISTANT_START)
    return ids, audios


def after_text_history_user(builder, text_history_doubled_im_end: bool) -> List[int]:
    """Ids between a transcript history turn's user text and the assistant start: none,
    or the reference's extra ``<|im_end|>`` (``text_history_doubled_im_end``)."""
    return builder.text(TURN_END) if text_history_doubled_im_end else []
