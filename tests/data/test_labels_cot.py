"""Label sets, text normalisation (docs/labels.md#label-sets, docs/labels.md#text-normalisation) and CoT strings (docs/labels.md#tag-think, docs/labels.md#language-think)."""

import random

import pytest

from espnet2_echat.data import cot, labels

TAG_THINK_EXAMPLE = (
    "<think>用户说的话是:I lost my keys again,年龄为:<CHILD>,性别为:<FEMALE>,情感为:<SAD>,"
    "声音事件为:<COUGH>,推测使用的回复情感为:<安慰鼓励>,"
    "我应该综合用户的语义和副语言信息给出专业且对应的回答<think end><安慰鼓励>Don't worry."
)


def test_normalize_label_aliases_and_case():
    assert labels.normalize_label("emotion", "<ANGER>") == "<ANGRY>"
    assert labels.normalize_label("emotion", "happy") == "<HAPPY>"
    assert labels.normalize_label("age", "<MIDDLE_AGE>") == "<ADULT>"
    assert labels.normalize_label("age", "YOUTH") == "<ADULT>"
    assert labels.normalize_label("gender", "<female>") == "<FEMALE>"
    assert labels.normalize_label("event", "<LAUGH>") == "<LAUGHTER>"
    assert labels.normalize_label("style", "<小说>") == "<有声书>"
    assert labels.normalize_label("reply_emotion", "中立") == "<中立>"
    assert labels.normalize_label("age", "<&&>", allow_unknown=True) == "<&&>"
    with pytest.raises(ValueError, match="not a gender label"):
        labels.normalize_label("gender", "<CHILD>")
    with pytest.raises(ValueError, match="not a age label"):
        labels.normalize_label("age", "<&&>")


def test_label_set_sizes_match_spec():
    assert len(labels.REPLY_EMOTION_LABELS) == 11
    assert len(labels.EVENT_LABELS) == 8
    assert "<ANGER>" not in labels.EMOTION_LABELS
    assert len(labels.STYLE_LABELS) == 8


@pytest.mark.parametrize(
    "txt, task, expected",
    [
        ("Hello World", "<TRANSCRIBE>", "hello world"),
        ("Hello World", "<S2TCHAT>", "Hello World"),
        ("今 天 天气 很好 ", "<TRANSCRIBE>", "今天天气很好"),
        ("I am fine < HAPPY > ", "<TRANSCRIBE> <EMOTION>", "I am fine<HAPPY>"),
        ("line one\nline two", "<TEXT2TEXT>", "line one line two"),
        ("ok <ADULT> <FEMALE>", "<TRANSCRIBE> <AGE> <GENDER>", "ok<ADULT><FEMALE>"),
    ],
)
def test_normalize_text_process_text2(txt, task, expected):
    assert labels.normalize_text(txt, task) == expected


def test_ensure_reply_emotion():
    assert labels.ensure_reply_emotion("<开心>Great!") == ("<开心>", "Great!")
    assert labels.ensure_reply_emotion("Great!") == ("<中立>", "Great!")
    assert labels.ensure_reply_emotion("<HAPPY>Great!") == ("<中立>", "Great!")


def test_build_tag_think_target_is_byte_exact():
    got = cot.build_tag_think_target(
        "I lost my keys again",
        "Don't worry.",
        age="CHILD",
        gender="<FEMALE>",
        emotion="<SAD>",
        event="<COUGH>",
        reply_emotion="<安慰鼓励>",
    )
    assert got == TAG_THINK_EXAMPLE
    # reply emotion taken from the reply's leading tag, as the reference does
    got2 = cot.build_tag_think_target(
        "I lost my keys again",
        "<安慰鼓励>Don't worry.",
        age="<CHILD>",
        gender="<FEMALE>",
        emotion="<SAD>",
        event="<COUGH>",
    )
    assert got2 == TAG_THINK_EXAMPLE


def test_tag_think_missing_fields():
    body = cot.build_tag_think("hi", use_unknown=True)
    assert body == (
        "用户说的话是:hi,年龄为:<&&>,性别为:<&&>,情感为:<&&>,声音事件为:<&&>,"
        "推测使用的回复情感为:<中立>,我应该综合用户的语义和副语言信息给出专业且对应的回答"
    )
    body = cot.build_tag_think("hi", gender="<FEMALE>", use_unknown=False)
    assert "年龄为:<ADULT>,性别为:<FEMALE>,情感为:<NEUTRAL>,声音事件为:<OTHER>" in body
    with pytest.raises(ValueError):
        cot.build_tag_think("")
    flips = [cot.draw_use_unknown(random.Random(i)) for i in range(400)]
    assert 0.75 < sum(flips) / len(flips) < 0.95


def test_parse_tag_think_roundtrip_and_garbage():
    parsed = cot.parse_tag_think(TAG_THINK_EXAMPLE)
    assert parsed == {
        "q_txt": "I lost my keys again",
        "age": "<CHILD>",
        "gender": "<FEMALE>",
        "emotion": "<SAD>",
        "event": "<COUGH>",
        "reply_emotion": "<安慰鼓励>",
        "reply": "Don't worry.",
    }
    # bare body (a data dir's think file), q_txt with commas
    body = cot.build_tag_think("well, yes, ok", "<OLD>", "<MALE>", "<HAPPY>", "<OTHER>", "<开心>")
    parsed = cot.parse_tag_think(body)
    assert parsed["q_txt"] == "well, yes, ok" and parsed["age"] == "<OLD>"
    assert parsed["reply"] == ""
    # truncated model output and plain garbage
    parsed = cot.parse_tag_think("<think>用户说的话是:hey,年龄为:<AD")
    assert parsed["q_txt"] == "hey" and parsed["age"] is None and parsed["gender"] is None
    parsed = cot.parse_tag_think("complete garbage")
    assert all(parsed[k] is None for k in ("q_txt", "age", "gender", "emotion", "event"))


def test_language_think_and_split():
    target = cot.build_language_think("The speaker sounds sad.", "I am sorry.")
    assert target == "<think>The speaker sounds sad.<think end>I am sorry."
    assert cot.split_think(target) == ("The speaker sounds sad.", "I am sorry.")
    assert cot.split_think("no cot here") == ("", "no cot here")
    assert cot.split_think("<think>unfinished") == ("unfinished", "")
    assert cot.split_think("<think>a</think end>b") == ("a", "b")
    with pytest.raises(ValueError):
        cot.build_language_think("", "x")
