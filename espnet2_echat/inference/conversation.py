"""Multi-turn conversation state and its prompt layouts (docs/data_pipeline.md#history,
docs/decoding.md#multi-turn).

A prompt is a list of unified ids in which ``AUDIO_PLACEHOLDER`` entries mark, in order,
where encoded audio goes (:func:`embed_prompt`). The layouts of past turns (the default
training layout and the reference's ``reference_compat`` one) are built by
:meth:`espnet2_echat.data.layout.LayoutBuilder.history`, which training uses too.
"""

from typing import List, Sequence

import torch

from espnet2_echat.data.layout import LayoutBuilder, Turn
from espnet2_echat.models.splice import splice_sample

__all__ = ["Conversation", "Turn", "embed_prompt", "history_prompt"]


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
    return builder.history_prompt(output_type, history)


def embed_prompt(llm, ids: Sequence[int], audios: Sequence[torch.Tensor]) -> torch.Tensor:
    """Embed unified ids and put ``audios[k]`` at the k-th placeholder: (L, H)."""
    device = next(llm.parameters()).device
    ids_t = torch.as_tensor(list(ids), dtype=torch.long, device=device)
    return splice_sample(llm.embed, ids_t, list(audios))[0]
