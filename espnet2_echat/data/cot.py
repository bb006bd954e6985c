"""Chain-of-thought (CoT) strings of OSUM-EChat, built and parsed byte-exactly.

Two CoT kinds exist (docs/labels.md#tag-think, docs/labels.md#language-think):

* tag think (label-based)::

    <think>用户说的话是:{q_txt},年龄为:{age},性别为:{gender},情感为:{emotion},声音事件为:{event},推测使用的回复情感为:{reply_emotion},我应该综合用户的语义和副语言信息给出专业且对应的回答<think end>{reply_emotion}{reply}

* language think (free text)::

    <think>{think}<think end>{reply}

The end marker is ``<think end>`` (with a space), as in the reference's data, although its
system prompt writes ``</think end>``. A data dir's ``think`` file holds the CoT *without*
the ``<think>`` / ``<think end>`` markers; :func:`wrap_think` adds them.
"""

from __future__ import annotations

import random
import re
from typing import Dict, Optional, Tuple

from espnet2_echat.data.labels import (
    DEFAULT_AGE,
    DEFAULT_EMOTION,
    DEFAULT_EVENT,
    DEFAULT_GENDER,
    DEFAULT_REPLY_EMOTION,
    REPLY_EMOTION_LABELS,
    UNKNOWN_LABEL,
    bracket,
    ensure_reply_emotion,
)

THINK_START = "<think>"
THINK_END = "<think end>"
# End markers a model may emit instead of the trained one (the system prompt's spelling
# and the common HF one); only the parser accepts them.
THINK_END_VARIANTS: Tuple[str, ...] = (THINK_END, "</think end>", "</think>")

# Probability that missing tag-think fields become <&&> rather than defaults
# (docs/labels.md#tag-think).
UNKNOWN_FILL_PROB = 0.85

_TAG_THINK_FIELDS: Tuple[Tuple[str, str], ...] = (
    ("q_txt", "用户说的话是:"),
    ("age", "年龄为:"),
    ("gender", "性别为:"),
    ("emotion", "情感为:"),
    ("event", "声音事件为:"),
    ("reply_emotion", "推测使用的回复情感为:"),
)
_TAG_THINK_TAIL = "我应该综合用户的语义和副语言信息给出专业且对应的回答"
_RE_TAG = re.compile(r"\s*(<[^<>]*>)")


def draw_use_unknown(rng: random.Random, prob: float = UNKNOWN_FILL_PROB) -> bool:
    """One coin flip per sample: True -> missing fields become ``<&&>``
    (docs/labels.md#tag-think)."""
    return rng.random() < prob


def _fill(value: Optional[str], default: str, use_unknown: bool) -> str:
    if value is None or value.strip() == "":
        return UNKNOWN_LABEL if use_unknown else default
    return bracket(value)


def build_tag_think(
    q_txt: str,
    age: Optional[str] = None,
    gender: Optional[str] = None,
    emotion: Optional[str] = None,
    event: Optional[str] = None,
    reply_emotion: Optional[str] = None,
    use_unknown: bool = True,
) -> str:
    """Return the label-based CoT body (no ``<think>`` markers).

    Args:
        q_txt: transcript of the user's speech.
        age, gender, emotion, event: labels with or without angle brackets; ``None`` or
            empty means missing.
        reply_emotion: one of the reply-emotion tags; missing or outside the set gives
            ``<中立>``.
        use_unknown: missing labels become ``<&&>`` (True) or the reference's defaults
            ``<ADULT> <MALE> <NEUTRAL> <OTHER>`` (False); see :func:`draw_use_unknown`.
    """
    if not q_txt:
        raise ValueError("tag think needs the user transcript (q_txt), got an empty one")
    reply_emotion = _valid_reply_emotion(reply_emotion)
    values = (
        q_txt,
        _fill(age, DEFAULT_AGE, use_unknown),
        _fill(gender, DEFAULT_GENDER, use_unknown),
        _fill(emotion, DEFAULT_EMOTION, use_unknown),
        _fill(event, DEFAULT_EVENT, use_unknown),
        reply_emotion,
    )
    parts = [name + value for (_, name), value in zip(_TAG_THINK_FIELDS, values)]
    return ",".join(parts) + "," + _TAG_THINK_TAIL


def _valid_reply_emotion(reply_emotion: Optional[str]) -> str:
    if not reply_emotion:
        return DEFAULT_REPLY_EMOTION
    tag = bracket(reply_emotion)
    return tag if tag in REPLY_EMOTION_LABELS else DEFAULT_REPLY_EMOTION


def wrap_think(think: str, reply: str) -> str:
    """Return ``<think>{think}<think end>{reply}``."""
    return f"{THINK_START}{think}{THINK_END}{reply}"


def build_tag_think_target(
    q_txt: str,
    reply: str,
    age: Optional[str] = None,
    gender: Optional[str] = None,
    emotion: Optional[str] = None,
    event: Optional[str] = None,
    reply_emotion: Optional[str] = None,
    use_unknown: bool = True,
) -> str:
    """Return the full tag-think target ``<think>…<think end>{reply_emotion}{reply}``.

    When ``reply_emotion`` is None it is taken from the reply's leading tag as the
    reference does (:func:`espnet2_echat.data.labels.ensure_reply_emotion`).
    """
    if reply_emotion is None:
        reply_emotion, reply = ensure_reply_emotion(reply)
    reply_emotion = _valid_reply_emotion(reply_emotion)
    think = build_tag_think(q_txt, age, gender, emotion, event, reply_emotion, use_unknown)
    return wrap_think(think, reply_emotion + reply)


def build_language_think(think: str, reply: str) -> str:
    """Return the natural-language CoT target ``<think>{think}<think end>{reply}``."""
    if not think:
        raise ValueError("language think needs a non-empty think text")
    return wrap_think(think, reply)


def split_think(text: str) -> Tuple[str, str]:
    """Split a generated or target text into ``(think, reply)``.

    The think part loses its markers. Text without a CoT gives ``("", text)``; a CoT
    whose end marker never came (a truncated generation) gives ``(cot, "")``.
    """
    body = text.lstrip()
    has_start = body.startswith(THINK_START)
    if has_start:
        body = body[len(THINK_START) :]
    end_at, end_len = -1, 0
    for marker in THINK_END_VARIANTS:
        pos = body.find(marker)
        if pos >= 0 and (end_at < 0 or pos < end_at):
            end_at, end_len = pos, len(marker)
    if end_at < 0:
        return (body, "") if has_start else ("", text)
    return body[:end_at], body[end_at + end_len :]


def parse_tag_think(text: str) -> Dict[str, Optional[str]]:
    """Read the fields of a label-based CoT.

    Accepts a CoT body, a ``<think>…<think end>…`` target or model output. Returns a
    dict with keys ``q_txt age gender emotion event reply_emotion reply``; a field that
    is missing or malformed is ``None`` (never raises on garbage).
    """
    think, reply = split_think(text)
    if not think and not any(m in text for m in (THINK_START,) + THINK_END_VARIANTS):
        think, reply = text, ""  # a bare CoT body, as in a data dir's ``think`` file
    result: Dict[str, Optional[str]] = {name: None for name, _ in _TAG_THINK_FIELDS}
    positions = []
    for name, prefix in _TAG_THINK_FIELDS:
        pos = think.find(prefix)
        if pos >= 0:
            positions.append((pos, name, prefix))
    positions.sort()
    for i, (pos, name, prefix) in enumerate(positions):
        start = pos + len(prefix)
        end = positions[i + 1][0] if i + 1 < len(positions) else len(think)
        value = think[start:end]
        if name == "q_txt":
            result[name] = value[:-1] if value.endswith(",") else value
            continue
        match = _RE_TAG.match(value)
        result[name] = match.group(1) if match else None
    reply_tag = _RE_TAG.match(reply)
    if reply_tag and reply_tag.group(1) in REPLY_EMOTION_LABELS:
        reply = reply[reply_tag.end() :]
        if result["reply_emotion"] is None:
            result["reply_emotion"] = reply_tag.group(1)
    result["reply"] = reply
    return result
