"""OSUM-EChat's tags as added tokens of the LLM's own tokenizer (config ``add_tag_tokens``).

Qwen2.5 spells a label tag in 2-4 BPE pieces (``<MALE>`` = ``<``, ``MA``, ``LE``, ``>``) and
the released model was trained that way, so the default keeps tags as plain text. An LLM
with another tokenizer (SmolLM2: ``<MALE>`` 4 pieces, ``<安慰鼓励>`` 12 byte pieces) learns
a new size better when each tag is one id, as a user adds tokens to any LLM: the tags are
added to the tokenizer and the LLM's embeddings grow to cover them
(``models.causal_lm.grow_vocabulary``; each new row starts as the mean of the rows of the
pieces the tag had, so tags start distinct and near their spelling).

The tags are added with ``special=False``: decoding (``skip_special_tokens=True``) keeps
them in the reply text, where scoring reads the label. Audio markers and speech ids need no
text tokens: they are rows of the speech table beside the LLM (``data.speech_ids``), whose
ids start after the (grown) text vocabulary.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from espnet2_echat.data.cot import THINK_END, THINK_START
from espnet2_echat.data.labels import (
    AGE_LABELS,
    EMOTION_LABELS,
    EVENT_LABELS,
    GENDER_LABELS,
    REPLY_EMOTION_LABELS,
    UNKNOWN_LABEL,
)
from espnet2_echat.data.task_registry import DATA_SETS, STTC_SEPARATOR


def tag_tokens() -> Tuple[str, ...]:
    """Every tag, once, in a fixed order: task tags of the registry, label tags, ``<&&>``,
    the think markers and the STTC separator."""
    task_tags = sorted({tag for data_set in DATA_SETS for tag in data_set.tag.split()})
    labels = AGE_LABELS + GENDER_LABELS + EMOTION_LABELS + EVENT_LABELS + REPLY_EMOTION_LABELS
    extra = (UNKNOWN_LABEL, THINK_START, THINK_END, STTC_SEPARATOR)
    return tuple(dict.fromkeys(list(task_tags) + list(labels) + list(extra)))


def add_tag_tokens(tokenizer) -> None:
    """Add the tags that are not single ids yet to ``tokenizer`` in place
    (``tokenizer.add_tokens``, not special: decoding keeps them)."""
    from tokenizers import AddedToken

    new = [tag for tag in tag_tokens() if len(tokenizer.encode(tag, add_special_tokens=False)) > 1]
    tokenizer.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in new])
    for tag in new:
        ids = tokenizer.encode(tag, add_special_tokens=False)
        if ids != [tokenizer.convert_tokens_to_ids(tag)]:
            raise RuntimeError(
                f"{getattr(tokenizer, 'name_or_path', tokenizer)!r}: tag {tag} was added but "
                f"still encodes as {ids}"
            )


def tag_ids(tagged) -> List[int]:
    """The single ids of every tag in ``tagged`` (a tokenizer passed through
    :func:`add_tag_tokens`): the text rows that train beside a frozen LLM
    (``models.text_row_deltas``)."""
    return sorted({tagged.convert_tokens_to_ids(tag) for tag in tag_tokens()})


def added_tag_pieces(plain, tagged) -> Dict[int, List[int]]:
    """``{id in tagged: ids of its pieces in plain}`` for every tag that ``tagged`` (a copy
    of ``plain`` passed through :func:`add_tag_tokens`) spells as one new id."""
    out = {}
    for tag in tag_tokens():
        before = plain.encode(tag, add_special_tokens=False)
        if len(before) > 1:
            out[tagged.convert_tokens_to_ids(tag)] = before
    return out
