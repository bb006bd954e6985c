"""Per-field accuracy of generated tag-think CoTs (docs/labels.md#tag-think)."""

import pytest

from espnet2_echat.scoring.cot_fields import score_tag_think

TAIL = "我应该综合用户的语义和副语言信息给出专业且对应的回答"


def cot(q, age, gender, emotion, event, remo):
    return (
        f"用户说的话是:{q},年龄为:{age},性别为:{gender},情感为:{emotion},"
        f"声音事件为:{event},推测使用的回复情感为:{remo},{TAIL}"
    )


REFS = {
    "text": {"u1": "今天好累啊", "u2": "I lost my keys", "u3": "hello there"},
    "utt2age": {"u1": "<ADULT>", "u2": "<CHILD>", "u3": "<OLD>"},
    "utt2gender": {"u1": "<FEMALE>", "u2": "<MALE>", "u3": "<MALE>"},
    "utt2emotion": {"u1": "<SAD>", "u2": "<SAD>", "u3": "<&&>"},
    "reply_emotion": {"u1": "<安慰鼓励>", "u2": "<安慰鼓励>", "u3": "<中立>"},
}


def test_well_formed_missing_and_garbage():
    think = {
        # well formed, all right
        "u1": cot(
            "今天好累啊", "<ADULT>", "<FEMALE>", "<SAD>", "<OTHER>", "<安慰鼓励>"
        ),
        # age wrong (ADULT vs CHILD), gender field missing, transcript one word off
        "u2": (
            "用户说的话是:I lost my key,年龄为:<ADULT>,情感为:<SAD>,声音事件为:<OTHER>,"
            f"推测使用的回复情感为:<安慰鼓励>,{TAIL}"
        ),
        # garbage
        "u3": "asdf <<<>>> 年龄",
    }
    m = score_tag_think(think, REFS, ["u1", "u2", "u3"])
    assert m["cot_parsed_rate"] == pytest.approx(100 / 3)
    assert m["cot_age_accuracy"] == pytest.approx(100 / 3)
    assert m["cot_gender_accuracy"] == pytest.approx(
        100 / 3
    )  # missing and garbage are wrong
    assert m["cot_emotion_accuracy"] == pytest.approx(
        100.0
    )  # u3's reference is unknown
    assert m["cot_reply_emotion_accuracy"] == pytest.approx(100 * 2 / 3)
    # transcript words: u1 five CJK units, all right; u2 "key" vs "keys" 1 sub of 4 words;
    # u3 nothing parsed: 2 deletions. (0 + 1 + 2) / (5 + 4 + 2)
    assert m["cot_transcript_wer"] == pytest.approx(100 * 3 / 11)
    assert "cot_event_accuracy" not in m  # no utt2event reference


def test_no_think_output_at_all():
    m = score_tag_think({}, {"utt2age": {"u1": "<ADULT>"}}, ["u1"])
    assert m == {"cot_parsed_rate": 0.0, "cot_age_accuracy": 0.0}
