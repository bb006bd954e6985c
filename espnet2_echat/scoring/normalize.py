"""Text normalisation for scoring, and the token units WER and CER count.

English goes through Whisper's ``EnglishTextNormalizer`` (transformers' port; its British
-> American spelling table is vendored from openai/whisper, MIT, because transformers
only ships the class and the hub tokenizers carry the table). Chinese follows the
reference: its target normalisation (docs/labels.md#text-normalisation: no whitespace
around CJK characters), and Arabic numbers written as Chinese numerals with ``cn2an`` as its
ASR scorer does (docs/scoring.md#text-normalisation); punctuation is removed and Latin
letters lower-cased.

Units: WER counts words, where each CJK character is a word (a mixed Chinese/English
text "今天 hello world" has the units ``今 天 hello world``); CER counts characters,
with the space written ``<space>`` as ESPnet's char tokenizer does.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from pathlib import Path
from typing import Callable, List

_ASSETS = Path(__file__).resolve().parent / "assets"
_CJK_RANGE = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RE_CJK = re.compile(f"[{_CJK_RANGE}]")
_RE_SPACE_AROUND_CJK = re.compile(rf"\s*([{_CJK_RANGE}])\s*")
_RE_TAG = re.compile(r"<[^<>]*>")
_RE_SPACES = re.compile(r"\s+")
_RE_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_RE_UNIT = re.compile(rf"[{_CJK_RANGE}]|[^\s{_CJK_RANGE}]+")
SPACE_SYMBOL = "<space>"


def has_cjk(text: str) -> bool:
    """True when ``text`` holds at least one CJK ideograph."""
    return _RE_CJK.search(text) is not None


@functools.lru_cache(maxsize=1)
def _english_normalizer() -> Callable[[str], str]:
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    with open(_ASSETS / "whisper_english_spelling.json", encoding="utf-8") as f:
        spelling = json.load(f)
    return EnglishTextNormalizer(spelling)


def _strip_punctuation(text: str) -> str:
    # Unicode punctuation (P*) and symbols (S*) become spaces, as Whisper's basic
    # normaliser does; this also catches full-width Chinese punctuation.
    return "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in text)


def normalize_chinese(text: str) -> str:
    """Normalise a Chinese (or mixed Chinese/English) text for scoring."""
    import cn2an

    text = unicodedata.normalize("NFKC", text)
    text = _RE_THOUSANDS.sub("", text)  # 1,000 -> 1000 (cn2an would read "1" and "000")
    # cn2an's "an2cn" transform rewrites Arabic numbers (incl. decimals, %) inside a
    # sentence, as the reference's ASR scorer does.
    text = cn2an.transform(text, "an2cn")
    text = _strip_punctuation(text).lower()
    text = _RE_SPACE_AROUND_CJK.sub(r"\1", text)
    return _RE_SPACES.sub(" ", text).strip()


def normalize_english(text: str) -> str:
    """Normalise an English text with Whisper's English normaliser."""
    return _RE_SPACES.sub(" ", _english_normalizer()(text)).strip()


def normalize_for_scoring(text: str, language: str = "auto") -> str:
    """Normalise a reference or hypothesis before WER/CER.

    Args:
        text: the text; ``<TAG>`` markers (labels, reply emotions) are removed first.
        language: ``en``, ``zh`` or ``auto`` (``zh`` when the text holds a CJK character).
    """
    if language not in ("auto", "en", "zh"):
        raise ValueError(f"language must be auto, en or zh, got {language!r}")
    text = _RE_TAG.sub(" ", text)
    if language == "auto":
        language = "zh" if has_cjk(text) else "en"
    return normalize_chinese(text) if language == "zh" else normalize_english(text)


def word_units(text: str) -> List[str]:
    """Split a normalised text into WER units: words, each CJK character on its own."""
    return _RE_UNIT.findall(text)


def char_units(text: str) -> List[str]:
    """Split a normalised text into CER units: characters, spaces as ``<space>``."""
    text = _RE_SPACES.sub(" ", text).strip()
    return [SPACE_SYMBOL if c == " " else c for c in text]
