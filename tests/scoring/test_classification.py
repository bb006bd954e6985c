"""Accuracy / macro-F1 by hand, label extraction, the confusion-matrix PNG."""

import pytest

from espnet2_echat.scoring.classification import (
    NO_LABEL,
    classify,
    plot_confusion,
    predicted_label,
    score_labels,
)


def test_predicted_label_rules():
    assert predicted_label("emotion", "<happy>") == "<HAPPY>"
    assert predicted_label("emotion", "今天天气很好<ANGER>") == "<ANGRY>"  # alias
    assert predicted_label("age", "<YOUTH>") == "<ADULT>"
    # several kinds in one output: each kind takes its own tag
    assert predicted_label("gender", "<ADULT><FEMALE>") == "<FEMALE>"
    assert predicted_label("emotion", "no tag here") == NO_LABEL
    assert predicted_label("emotion", "<PURPLE>") == NO_LABEL


def test_accuracy_and_macro_f1_by_hand(tmp_path):
    refs = ["<HAPPY>", "<HAPPY>", "<SAD>", "<ANGRY>"]
    preds = ["<HAPPY>", "<SAD>", "<SAD>", NO_LABEL]
    result = classify("emotion", refs, preds)
    # accuracy 2/4. F1 per reference class: ANGRY 0; HAPPY P=1 R=1/2 -> 2/3;
    # SAD P=1/2 R=1 -> 2/3. Macro = (0 + 2/3 + 2/3) / 3 = 4/9.
    assert result.accuracy == pytest.approx(50.0)
    assert result.macro_f1 == pytest.approx(100 * 4 / 9)
    assert result.labels == ["<ANGRY>", "<HAPPY>", "<SAD>"]
    assert result.columns == ["<ANGRY>", "<HAPPY>", "<SAD>", NO_LABEL]
    assert result.confusion == [[0, 0, 0, 1], [0, 1, 1, 0], [0, 0, 1, 0]]
    png = tmp_path / "cm.png"
    plot_confusion(result, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_score_labels_skips_unknown_and_counts_missing_outputs():
    refs = {"a": "<MALE>", "b": "<FEMALE>", "c": "<&&>", "d": "<FEMALE>"}
    outputs = {"a": "<MALE>", "b": "<FEMALE>", "c": "<MALE>"}  # d has no output
    result = score_labels("gender", refs, outputs)
    assert result.num_utts == 3
    assert result.accuracy == pytest.approx(100 * 2 / 3)
    assert score_labels("gender", {"c": "<&&>"}, outputs) is None
