"""Accuracy, macro-F1 and a confusion-matrix plot for paralinguistic labels.

The predicted class of an output is its first ``<...>`` tag that, upper-cased, is a
label of the kind scored (the reference's ``compute-acc.py`` takes the first tag; looking
further lets one output such as ``<ADULT><FEMALE>`` carry several kinds), in the canonical
spelling of :mod:`espnet2_echat.data.labels` (``<ANGER>`` -> ``<ANGRY>``, ``<YOUTH>`` ->
``<ADULT>``). An output with no such tag counts as the class ``<NO_LABEL>``: always wrong.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from espnet2_echat.data.labels import normalize_label

NO_LABEL = "<NO_LABEL>"
_RE_TAG = re.compile(r"<[^<>]*>")


def predicted_label(kind: str, text: str) -> str:
    """The label of ``kind`` an output text names (see the module docstring)."""
    for tag in _RE_TAG.findall(text):
        try:
            return normalize_label(kind, tag.upper())
        except ValueError:
            continue
    return NO_LABEL


@dataclass
class ClassificationResult:
    """Scores of one label kind over a set of utterances."""

    kind: str
    num_utts: int
    accuracy: float  # percent
    macro_f1: float  # percent, over the classes present in the reference
    labels: List[str]  # confusion-matrix rows (reference classes)
    columns: List[
        str
    ]  # confusion-matrix columns (reference classes + other predictions)
    confusion: List[List[int]]


def classify(
    kind: str, refs: Sequence[str], preds: Sequence[str]
) -> ClassificationResult:
    """Accuracy and macro-F1 (percent) of canonical predicted labels against references.

    Macro-F1 averages the per-class F1 over the classes that occur in the reference, so
    a prediction outside them (e.g. ``<NO_LABEL>``) lowers the recall of its true class
    without adding an empty class of its own.
    """
    from sklearn.metrics import confusion_matrix, f1_score

    if len(refs) != len(preds):
        raise ValueError(f"{kind}: {len(refs)} references but {len(preds)} predictions")
    if not refs:
        raise ValueError(
            f"{kind}: nothing to score (no utterance with a reference label)"
        )
    labels = sorted(set(refs))
    columns = labels + sorted(set(preds) - set(labels))
    correct = sum(r == p for r, p in zip(refs, preds))
    with warnings.catch_warnings():
        # sklearn warns on a single class although `labels` fixes the shape
        warnings.filterwarnings("ignore", message="A single label was found")
        f1 = f1_score(refs, preds, labels=labels, average="macro", zero_division=0)
        matrix = confusion_matrix(refs, preds, labels=columns)[: len(labels)]
    return ClassificationResult(
        kind=kind,
        num_utts=len(refs),
        accuracy=100.0 * correct / len(refs),
        macro_f1=100.0 * float(f1),
        labels=labels,
        columns=columns,
        confusion=matrix.tolist(),
    )


def score_labels(
    kind: str,
    ref_labels: Mapping[str, str],
    outputs: Mapping[str, str],
    skip: Sequence[str] = ("<&&>",),
) -> Optional[ClassificationResult]:
    """Score decoded outputs (``uttid -> text``) against reference labels.

    Utterances whose reference is in ``skip`` (unknown) are left out; a missing output
    counts as ``<NO_LABEL>``. Returns None when no utterance has a reference.
    """
    utts = [u for u in sorted(ref_labels) if ref_labels[u] not in skip]
    if not utts:
        return None
    refs = [normalize_label(kind, ref_labels[u]) for u in utts]
    preds = [predicted_label(kind, outputs.get(u, "")) for u in utts]
    return classify(kind, refs, preds)


def plot_confusion(result: ClassificationResult, path: Path) -> None:
    """Write the confusion matrix as a PNG (rows: reference, columns: prediction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(result.labels), len(result.columns)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * n_cols, 1.0 + 0.6 * n_rows))
    ax.imshow(result.confusion, cmap="Blues", aspect="auto")
    ax.set_xticks(range(n_cols), result.columns, rotation=45, ha="right")
    ax.set_yticks(range(n_rows), result.labels)
    for i, row in enumerate(result.confusion):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(
        f"{result.kind}: acc {result.accuracy:.1f}%, macro-F1 {result.macro_f1:.1f}%"
    )
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def as_metrics(result: ClassificationResult) -> Dict[str, float]:
    """``{kind}_accuracy`` and ``{kind}_macro_f1`` for results.json."""
    return {
        f"{result.kind}_accuracy": result.accuracy,
        f"{result.kind}_macro_f1": result.macro_f1,
    }
