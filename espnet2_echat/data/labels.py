"""Paralinguistic label sets and target-text normalisation of OSUM-EChat.

Label spellings follow the reference (docs/labels.md#tag-think, docs/labels.md#label-sets);
``normalize_text`` is the reference's ``process_text2`` (docs/labels.md#text-normalisation).
Everything here is pure string handling, so the preprocessor, the data-dir validator and the
corpus preparation scripts share it.
"""

from __future__ import annotations

import re
from typing import Dict, Tuple

UNKNOWN_LABEL = "<&&>"

AGE_LABELS: Tuple[str, ...] = ("<CHILD>", "<ADULT>", "<OLD>")
# Data values the reference rewrites to <ADULT> whenever the task contains <AGE>.
AGE_ALIASES: Dict[str, str] = {
    "<YOUTH>": "<ADULT>",
    "<MIDDLE_AGE>": "<ADULT>",
    "<MIDDLE>": "<ADULT>",
}

GENDER_LABELS: Tuple[str, ...] = ("<MALE>", "<FEMALE>")
GENDER_ALIASES: Dict[str, str] = {}

# The reference's code set lists both <ANGRY> and <ANGER>; the data-dir contract keeps
# <ANGRY> only.
EMOTION_LABELS: Tuple[str, ...] = (
    "<HAPPY>",
    "<SAD>",
    "<ANGRY>",
    "<FEAR>",
    "<DISGUST>",
    "<SURPRISE>",
    "<NEUTRAL>",
)
EMOTION_ALIASES: Dict[str, str] = {"<ANGER>": "<ANGRY>"}

# Sound events (VED / <CAPTION>): the eight classes of the reference's demo. The exact
# upper-case spellings are not in the reference code (docs/labels.md#label-sets), these are the
# plugin's.
EVENT_LABELS: Tuple[str, ...] = (
    "<LAUGHTER>",
    "<COUGH>",
    "<CRY>",
    "<SCREAM>",
    "<SIGH>",
    "<THROAT_CLEARING>",
    "<SNEEZE>",
    "<OTHER>",
)
EVENT_ALIASES: Dict[str, str] = {
    "<LAUGH>": "<LAUGHTER>",
    "<CRYING>": "<CRY>",
    "<SCREAMING>": "<SCREAM>",
}

# Reply emotions used by the tag-think CoT (docs/labels.md#tag-think), in the reference's order.
REPLY_EMOTION_LABELS: Tuple[str, ...] = (
    "<愉悦>",
    "<抱歉>",
    "<开心>",
    "<愤怒>",
    "<惊讶>",
    "<厌恶>",
    "<悲伤>",
    "<害怕>",
    "<哭腔>",
    "<安慰鼓励>",
    "<中立>",
)
DEFAULT_REPLY_EMOTION = "<中立>"
REPLY_EMOTION_ALIASES: Dict[str, str] = {}

# English glosses of the reply emotions (documentation and the English mini corpus).
REPLY_EMOTION_GLOSS: Dict[str, str] = {
    "<愉悦>": "cheerful",
    "<抱歉>": "apologetic",
    "<开心>": "happy",
    "<愤怒>": "angry",
    "<惊讶>": "surprised",
    "<厌恶>": "disgusted",
    "<悲伤>": "sad",
    "<害怕>": "afraid",
    "<哭腔>": "tearful",
    "<安慰鼓励>": "comforting",
    "<中立>": "neutral",
}

# Defaults the reference uses for missing CoT fields when it does not write <&&>.
DEFAULT_AGE = "<ADULT>"
DEFAULT_GENDER = "<MALE>"
DEFAULT_EMOTION = "<NEUTRAL>"
DEFAULT_EVENT = "<OTHER>"

# Speaking-style classes (<STYLE>) and the raw labels mapped onto them (docs/labels.md#label-sets).
STYLE_LABELS: Tuple[str, ...] = (
    "<新闻科普>",
    "<恐怖故事>",
    "<童话故事>",
    "<客服>",
    "<诗歌散文>",
    "<有声书>",
    "<日常口语>",
    "<其他>",
)
STYLE_ALIASES: Dict[str, str] = {
    "<朗读>": "<新闻科普>",
    "<科普百科>": "<新闻科普>",
    "<悬疑恐怖>": "<恐怖故事>",
    "<诗歌>": "<诗歌散文>",
    "<散文>": "<诗歌散文>",
    "<武侠评书>": "<有声书>",
    "<小说>": "<有声书>",
    "<历史>": "<有声书>",
    "<科幻>": "<有声书>",
    "<对话>": "<日常口语>",
    "<口语>": "<日常口语>",
    "<幽默>": "<其他>",
}

LABEL_SETS: Dict[str, Tuple[Tuple[str, ...], Dict[str, str]]] = {
    "age": (AGE_LABELS, AGE_ALIASES),
    "gender": (GENDER_LABELS, GENDER_ALIASES),
    "emotion": (EMOTION_LABELS, EMOTION_ALIASES),
    "event": (EVENT_LABELS, EVENT_ALIASES),
    "reply_emotion": (REPLY_EMOTION_LABELS, REPLY_EMOTION_ALIASES),
    "style": (STYLE_LABELS, STYLE_ALIASES),
}

_CJK = "\u4e00-\u9fff"
_RE_SPACE_AROUND_CJK = re.compile(rf"\s*([{_CJK}])\s*")
_RE_SPACE_BEFORE_LT = re.compile(r"\s*<\s*")
_RE_SPACE_AROUND_GT = re.compile(r"\s*>\s*")
_RE_LEADING_TAG = re.compile(r"^\s*(<[^<>]*>)")


def bracket(value: str) -> str:
    """Return ``value`` inside angle brackets, adding them only when missing."""
    value = value.strip()
    if value.startswith("<") and value.endswith(">"):
        return value
    return f"<{value}>"


def normalize_label(kind: str, value: str, allow_unknown: bool = False) -> str:
    """Return the canonical spelling of a label of one kind.

    Args:
        kind: one of ``age``, ``gender``, ``emotion``, ``event``, ``reply_emotion``,
            ``style``.
        value: the label, with or without angle brackets; English labels are matched
            case-insensitively (``happy`` -> ``<HAPPY>``, ``<ANGER>`` -> ``<ANGRY>``).
        allow_unknown: accept the unknown label ``<&&>`` and return it unchanged.

    Raises:
        ValueError: the value is not in the label set (nor an alias of one).
    """
    if kind not in LABEL_SETS:
        raise ValueError(f"unknown label kind {kind!r}; expected one of {sorted(LABEL_SETS)}")
    labels, aliases = LABEL_SETS[kind]
    tag = bracket(value)
    if allow_unknown and tag == UNKNOWN_LABEL:
        return tag
    for candidate in (tag, tag.upper()):
        if candidate in labels:
            return candidate
        if candidate in aliases:
            return aliases[candidate]
    raise ValueError(f"{value!r} is not a {kind} label; expected one of {' '.join(labels)}")


def is_label(kind: str, value: str) -> bool:
    """True when ``value`` is already the canonical spelling of a ``kind`` label."""
    return value in LABEL_SETS[kind][0]


def normalize_text(txt: str, task: str) -> str:
    """Normalise a target text as the reference's ``process_text2`` does
    (docs/labels.md#text-normalisation).

    Newlines become spaces; whitespace around CJK characters is removed; the text is
    lower-cased only when ``task`` is exactly ``<TRANSCRIBE>``; whitespace around ``<``
    and ``>`` is removed.
    """
    text = txt.replace("\n", " ")
    text = _RE_SPACE_AROUND_CJK.sub(r"\1", text)
    if task == "<TRANSCRIBE>":
        text = text.lower()
    text = _RE_SPACE_BEFORE_LT.sub("<", text)
    text = _RE_SPACE_AROUND_GT.sub(">", text)
    return text


def split_leading_tag(text: str) -> Tuple[str, str]:
    """Split ``"<tag>rest"`` into ``("<tag>", "rest")``; ``("", text)`` if no leading tag."""
    match = _RE_LEADING_TAG.match(text)
    if match is None:
        return "", text
    return match.group(1), text[match.end() :]


def ensure_reply_emotion(reply: str) -> Tuple[str, str]:
    """Return ``(reply_emotion, reply_without_tag)`` as the tag-think processor does.

    A reply is expected to start with a reply-emotion tag (docs/labels.md#tag-think). Without
    one, or with a tag outside the allowed set, the emotion is ``<中立>``; an unknown leading tag
    is dropped from the reply.
    """
    tag, rest = split_leading_tag(reply)
    if not tag:
        return DEFAULT_REPLY_EMOTION, reply
    if tag in REPLY_EMOTION_LABELS:
        return tag, rest
    return DEFAULT_REPLY_EMOTION, rest
