"""WER/CER: normalisation, hand-computed rates, edge cases, sclite against the Python DP."""

import random

import pytest

from espnet2_echat.scoring.normalize import (
    char_units,
    normalize_for_scoring,
    word_units,
)
from espnet2_echat.scoring.text_metrics import error_rates
from espnet2_echat.scoring.wer import (
    ErrorCounts,
    edit_distance,
    find_sclite,
    score_with_python,
    score_with_sclite,
    summary_lines,
)

needs_sclite = pytest.mark.skipif(
    find_sclite() is None, reason="sclite missing: install Debian's sctk"
)


def test_normalize_english_whisper_rules():
    assert (
        normalize_for_scoring("Hello, Mr. Smith! It's colour.")
        == "hello mister smith it is color"
    )


def test_normalize_chinese_numbers_punctuation_and_spaces():
    # cn2an writes Arabic numbers as Chinese numerals; punctuation and CJK spacing go.
    assert normalize_for_scoring("我有 3 个苹果，好吗？") == "我有三个苹果好吗"
    assert normalize_for_scoring("今天 Hello World!") == "今天hello world"
    assert normalize_for_scoring("价格是1,000元") == "价格是一千元"
    # tags (labels, reply emotions) are not words
    assert normalize_for_scoring("<开心>好的<HAPPY>") == "好的"


def test_units_of_mixed_text():
    assert word_units("我爱python编程") == ["我", "爱", "python", "编", "程"]
    assert char_units("ab c") == ["a", "b", "<space>", "c"]


def test_hand_computed_wer_and_cer():
    # WER: sat->sit (S) and "the" deleted (D): 2 / 6 words.
    # CER: a->i (S) and "the " deleted (4 D): 5 / 22 characters.
    rates = error_rates({"u": "the cat sat on the mat"}, {"u": "the cat sit on mat"})
    assert rates["wer"] == pytest.approx(100 * 2 / 6)
    assert rates["cer"] == pytest.approx(100 * 5 / 22)


def test_mixed_chinese_english():
    # units 我 爱 python 编 程: one substitution -> 1/5; characters: python (6) vs java (4):
    # 4 substitutions + 2 deletions over 10 characters.
    rates = error_rates({"u": "我爱 Python 编程"}, {"u": "我爱 java 编程"})
    assert rates["wer"] == pytest.approx(20.0)
    assert rates["cer"] == pytest.approx(60.0)
    assert error_rates({"u": "我有3个苹果"}, {"u": "我有三个苹果。"}) == {
        "wer": 0.0,
        "cer": 0.0,
    }


def test_empty_reference_and_empty_hypothesis():
    alone = edit_distance([], ["hello", "world"])
    assert (alone.insertions, alone.ref_len, alone.rate()) == (2, 0, None)
    assert edit_distance(["a", "b", "c"], []).as_dict()["rate"] == 100.0
    assert edit_distance([], []).rate() is None
    # in a set, the insertions of an empty reference count: 2 errors over 2 words
    rates = error_rates({"u1": "", "u2": "a b"}, {"u1": "hello world", "u2": "a b"})
    assert rates["wer"] == pytest.approx(100.0)
    assert error_rates({"u1": "a b"}, {})["wer"] == 100.0  # missing hypothesis = empty


def _random_sets(seed: int, n: int = 40):
    rng = random.Random(seed)
    vocab = ["a", "b", "c", "d", "今", "天", "x"]
    refs, hyps = {}, {}
    for i in range(n):
        ref = [rng.choice(vocab) for _ in range(rng.randint(0, 8))]
        hyp = [
            t if rng.random() < 0.7 else rng.choice(vocab)
            for t in ref
            if rng.random() < 0.85
        ]
        hyp += [rng.choice(vocab) for _ in range(rng.randint(0, 2))]
        refs[f"utt{i:02d}"], hyps[f"utt{i:02d}"] = ref, hyp
    return refs, hyps


@needs_sclite
def test_sclite_agrees_with_python_edit_distance(tmp_path):
    refs, hyps = _random_sets(0)
    total, per_utt = score_with_sclite(
        refs, hyps, tmp_path, utt2spk={u: "spk1" for u in refs}
    )
    py_total, py_per_utt = score_with_python(refs, hyps)
    for utt in refs:
        assert (per_utt[utt].errors, per_utt[utt].ref_len) == (
            py_per_utt[utt].errors,
            py_per_utt[utt].ref_len,
        ), utt
    assert (total.errors, total.ref_len, total.sentence_errors) == (
        py_total.errors,
        py_total.ref_len,
        py_total.sentence_errors,
    )
    # ESPnet's files: trn lines "tokens (spk-utt)" and the sclite report with Sum/Avg
    first = (tmp_path / "ref.trn").read_text(encoding="utf-8").splitlines()[0]
    assert first.endswith("(spk1-utt00)")
    header, avg = summary_lines(tmp_path / "result.txt")
    assert "SPKR" in header and "Sum/Avg" in avg


@needs_sclite
def test_sclite_hand_computed_counts(tmp_path):
    refs = {"u1": ["a", "b", "c"], "u2": [], "u3": ["今", "天"]}
    hyps = {"u1": ["a", "c", "d"], "u2": ["q"], "u3": ["今", "天", "好"]}
    total, _ = score_with_sclite(refs, hyps, tmp_path)
    # u1: b deleted, d inserted; u2: q inserted; u3: 好 inserted
    assert total == ErrorCounts(
        correct=4,
        substitutions=0,
        deletions=1,
        insertions=3,
        sentences=3,
        sentence_errors=3,
    )
    assert total.rate() == pytest.approx(100 * 4 / 5)


@needs_sclite
def test_error_rates_with_score_dir_writes_espnet_folders(tmp_path):
    rates = error_rates(
        {"u": "the cat sat on the mat"}, {"u": "the cat sit on mat"}, score_dir=tmp_path
    )
    assert rates["wer"] == pytest.approx(100 * 2 / 6)
    assert rates["cer"] == pytest.approx(100 * 5 / 22)
    for name in ("score_wer", "score_cer"):
        assert {p.name for p in (tmp_path / name).iterdir()} >= {
            "ref.trn",
            "hyp.trn",
            "result.txt",
        }
    assert "<space>" in (tmp_path / "score_cer" / "ref.trn").read_text(encoding="utf-8")


@needs_sclite
def test_sclite_mixed_case_utterance_ids(tmp_path):
    """sclite lower-cases ids in its dump; ids with capitals (e.g. asterisk's vm-Cust5) match."""
    refs = {"spk-vm-Cust5": ["folder", "9"], "spk-a": ["x"]}
    hyps = {"spk-vm-Cust5": ["folder"], "spk-a": ["x"]}
    total, per_utt = score_with_sclite(refs, hyps, tmp_path)
    assert per_utt["spk-vm-Cust5"].deletions == 1 and total.correct == 2
