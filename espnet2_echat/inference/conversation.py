"""Multi-turn conversation state and its prompt layouts (spec 4.10, 6.6).

A prompt is a list of unified ids in which ``AUDIO_PLACEHOLDER`` entries mark, in order,
where encoded audio goes (:func:`embed_prompt`).

Two layouts of past turns exist:

* default, the training layout of ``speech2text_token_history`` (spec 4.10), per turn::

      <user audio> <|im_end|>\\n <|im_end|>\\n<|im_start|>assistant\\n <reply ids>
      [marker speech... marker] <|im_end|>\\n <|im_start|>user\\n

  after ``P1`` (system + user start), then the current audio block and ``P2``;
* ``reference_compat``, the reference's ``generate_s2s_no_stream_multi_turn`` (spec 6.6):
  the system block without user start, per turn ``[bos] <user audio> [eos] P2 <reply ids>
  [marker speech... marker]``, then ``<|im_start|>user\\n [bos] <audio> [eos] P2``.
"""

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch

from espnet2_echat.data.layout import LayoutBuilder
from espnet2_echat.data.templates import (
    ASSISTANT_START,
    AUDIO_PLACEHOLDER,
    OUTPUT_TYPE_PROMPT,
    TURN_END,
    USER_START,
    system_block,
)


@dataclass
class Turn:
    """One past exchange.

    ``user_audio`` holds the encoded user audio (n, H) (the Python API keeps the adapter
    output to avoid re-encoding); a turn without it uses ``user_text`` instead.
    ``reply_ids`` are the assistant's text ids without ``<|im_end|>``.
    """

    reply_ids: List[int]
    speech_tokens: List[int] = field(default_factory=list)
    user_audio: Optional[torch.Tensor] = None
    user_text: Optional[str] = None


class Conversation:
    """The last ``max_turns`` turns of a chat (the reference keeps 5)."""

    def __init__(self, max_turns: int = 5):
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        self.max_turns = max_turns
        self.turns: List[Turn] = []

    def add(self, turn: Turn) -> None:
        self.turns = (self.turns + [turn])[-self.max_turns :]

    def new(self) -> None:
        """Start a new conversation (the reference's ``start_new_conversation=True``)."""
        self.turns = []

    def __len__(self) -> int:
        return len(self.turns)


def history_prompt(
    builder: LayoutBuilder,
    output_type: str,
    history: Sequence[Turn],
) -> tuple:
    """Prompt ids (with placeholders) and the audio list for an audio turn after ``history``.

    Returns ``(ids, audios)`` where ``audios`` lists the past turns' audio in placeholder
    order; the current turn's audio comes last and is not included.
    """
    ids: List[int] = []
    audios: List[torch.Tensor] = []
    compat = builder.reference_compat
    prompt_name = OUTPUT_TYPE_PROMPT.get(output_type, "fallback")
    ids += builder.text(system_block(prompt_name, with_user_start=not compat))
    marker = builder.speech_marker
    for turn in history:
        if turn.user_audio is not None:
            user = builder.audio_block() if compat else [AUDIO_PLACEHOLDER]
            audios.append(turn.user_audio)
        elif turn.user_text:
            user = builder.text(turn.user_text)
        else:
            raise ValueError("a history turn has neither user audio nor user text")
        speech = (
            [marker] + builder.speech(turn.speech_tokens) + [marker] if turn.speech_tokens else []
        )
        if compat:
            ids += user + builder.text(ASSISTANT_START) + list(turn.reply_ids) + speech
        else:
            ids += user + builder.text(TURN_END + ASSISTANT_START) + list(turn.reply_ids)
            ids += speech + builder.text(TURN_END + USER_START)
    if compat:
        ids += builder.text(USER_START)
    ids += builder.audio_block() + builder.text(ASSISTANT_START)
    return ids, audios


def embed_prompt(llm, ids: Sequence[int], audios: Sequence[torch.Tensor]) -> torch.Tensor:
    """Embed unified ids and put ``audios[k]`` at the k-th placeholder: (L, H)."""
    ids_t = torch.as_tensor(list(ids), dtype=torch.long)
    where = (ids_t == AUDIO_PLACEHOLDER).nonzero().flatten().tolist()
    if len(where) != len(audios):
        raise ValueError(f"prompt has {len(where)} audio placeholders but {len(audios)} audios")
    device = next(llm.parameters()).device
    parts, start = [], 0
    for pos, audio in zip(where + [len(ids_t)], list(audios) + [None]):
        if pos > start:
            parts.append(llm.embed(ids_t[start:pos].to(device)))
        if audio is not None:
            parts.append(audio.to(device=device, dtype=parts[-1].dtype if parts else audio.dtype))
        start = pos + 1
    return torch.cat(parts)
