"""The sections of RESULTS.md beyond the metric tables: labels against chance, confusion
matrices, the validation loss of every training stage, and hypotheses before and after
training.

Each ``*_section`` function returns markdown lines (starting with a ``##`` heading) and
copies the pictures it shows into ``images_dir`` (linked relative to ``RESULTS.md``).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from espnet2.fileio.read_text import read_2columns_text

from espnet2_echat.data.task_registry import LABEL_BY_KIND
from espnet2_echat.scoring.intervals import compare_with_chance
from espnet2_echat.scoring.task_spec import CLI_TASKS

_EPOCH_LINE = re.compile(r"(\d+)epoch results: (.*)$")
_PHASE = re.compile(r"\[(\w+)\] ")
_LABEL_KINDS = ("gender", "age", "emotion", "event")  # the paralinguistic labels shown


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _link(png: Path, images_dir: Path, name: str, out_dir: Path) -> str:
    """Copy ``png`` to ``images_dir/name``; the path of the copy relative to ``out_dir``."""
    images_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(png, images_dir / name)
    return str((images_dir / name).resolve().relative_to(out_dir.resolve()))


def label_rows(results: Sequence[dict]) -> List[tuple]:
    """``(test set, kind, ChanceComparison)`` of every paralinguistic label scored."""
    rows = []
    for res in sorted(results, key=lambda r: r["info"]["test_set"]):
        for kind, conf in sorted(res.get("confusion", {}).items()):
            if kind in _LABEL_KINDS:
                rows.append((res["info"]["test_set"], kind, compare_with_chance(conf["matrix"])))
    return rows


def chance_section(results: Sequence[dict]) -> List[str]:
    """Accuracy per label with its 95 % Wilson interval beside the two chance levels."""
    rows = label_rows(results)
    if not rows:
        return []
    lines = [
        "## Paralinguistic labels against chance",
        "",
        "Accuracy (%) on the held-out test utterances with its 95 % Wilson score interval; "
        "chance levels: *majority* = the share of the most frequent reference class (always "
        "answering it), *uniform* = 1 / the number of reference classes in the set. "
        "*above chance*: the whole interval lies above both.",
        "",
        "|dataset|label|Snt|correct|accuracy|95 % interval|majority|uniform (1/#classes)|above chance|",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, kind, c in rows:
        lines.append(
            f"|{name}|{kind}|{c.n}|{c.correct}|{_pct(c.accuracy)}|{_pct(c.low)}-{_pct(c.high)}|"
            f"{_pct(c.majority_share)}|{_pct(c.uniform)} (1/{c.num_classes})|"
            f"{'yes' if c.above_chance else 'no'}|"
        )
    return lines


def confusion_table(conf: Mapping[str, list]) -> List[str]:
    """A confusion matrix as a markdown table (rows: reference, columns: prediction)."""
    cols = conf["columns"]
    lines = [
        "|reference \\ predicted|" + "|".join(cols) + "|",
        "|---|" + "|".join("---" for _ in cols) + "|",
    ]
    for label, row in zip(conf["labels"], conf["matrix"]):
        lines.append(f"|{label}|" + "|".join(str(v) for v in row) + "|")
    return lines


def confusion_section(
    rows: Sequence[Tuple[Path, dict]], images_dir: Path, out_dir: Path
) -> List[str]:
    """A confusion matrix per label of every set: a table, and the PNG echat_score drew.

    ``rows``: ``(results.json path, its content)``; the PNGs lie beside ``results.json``.
    """
    lines: List[str] = []
    for path, res in sorted(rows, key=lambda r: r[1]["info"]["test_set"]):
        name = res["info"]["test_set"]
        for kind, conf in sorted(res.get("confusion", {}).items()):
            if kind not in _LABEL_KINDS:
                continue
            lines += ["", f"### {name}: {kind}", ""] + confusion_table(conf)
            png = Path(path).parent / f"confusion_{kind}.png"
            if png.is_file():
                rel = _link(png, images_dir, f"confusion_{name}_{kind}.png", out_dir)
                lines += ["", f"![{name} {kind} confusion matrix]({rel})"]
    return ["## Confusion matrices"] + lines if lines else []


@dataclass
class StageCurve:
    """Per-epoch validation (and training) statistics of one training stage."""

    name: str
    valid: Dict[int, Dict[str, float]]
    train: Dict[int, Dict[str, float]]


def _stats(text: str) -> Dict[str, float]:
    out = {}
    for item in text.split(", "):
        key, _, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            continue
    return out


def earlier_logs(path: Path) -> List[Path]:
    """``train.log.1`` .. ``train.log.N`` beside ``path``: the logs of earlier (killed or
    resumed) runs that the recipe's ``keep_log`` kept, oldest first."""
    path = Path(path)
    numbered = [p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()]
    return sorted(numbered, key=lambda p: int(p.suffix[1:]))


def parse_train_log(path: Path) -> StageCurve:
    """The ``Nepoch results: [train] ... [valid] ...`` lines of an ESPnet ``train.log`` and of
    the earlier runs' logs kept beside it (a resumed run logs an epoch again: the last line of
    an epoch wins)."""
    valid: Dict[int, Dict[str, float]] = {}
    train: Dict[int, Dict[str, float]] = {}
    text = "\n".join(
        p.read_text(encoding="utf-8", errors="replace") for p in earlier_logs(path) + [Path(path)]
    )
    for line in text.splitlines():
        m = _EPOCH_LINE.search(line)
        if not m:
            continue
        epoch, rest = int(m.group(1)), m.group(2)
        parts = _PHASE.split(rest)  # ["", "train", "k=v, ", "valid", "k=v", ...]
        for phase, text in zip(parts[1::2], parts[2::2]):
            target = {"train": train, "valid": valid}.get(phase)
            if target is not None:
                target[epoch] = _stats(text.rstrip(", "))
    return StageCurve(Path(path).parent.name, valid, train)


def training_section(exp_dirs: Sequence[Path], images_dir: Path, out_dir: Path) -> List[str]:
    """Validation loss (and accuracy) per epoch of every stage, with its loss curve."""
    lines = ["## Training: validation loss per epoch", ""]
    found = False
    for exp in exp_dirs:
        log = Path(exp) / "train.log"
        if not log.is_file():
            lines += [f"- `{exp}`: no train.log", ""]
            continue
        curve = parse_train_log(log)
        epochs = sorted(curve.valid)
        if not epochs:
            lines += [f"- `{exp}`: no epoch finished", ""]
            continue
        found = True
        # with --label_aux_weight the objective ("loss") is the LLM's loss ("loss_llm") plus the
        # weighted label heads' ("loss_label_aux"): each part's trend is shown
        keys = [
            k
            for k in ("loss", "loss_llm", "loss_label_aux", "acc", "acc_speech")
            if any(k in curve.valid[e] for e in epochs)
        ]
        trends = [
            _trend(k, [curve.valid[e].get(k) for e in epochs])
            for k in keys
            if k.startswith("loss")
        ]
        lines += [f"### {curve.name} ({'; '.join(trends)})", ""]
        lines.append("|epoch|train loss|" + "|".join(f"valid {k}" for k in keys) + "|")
        lines.append("|---|---|" + "|".join("---" for _ in keys) + "|")
        for e in epochs:
            tr = curve.train.get(e, {}).get("loss")
            cells = [_num(curve.valid[e].get(k)) for k in keys]
            lines.append(f"|{e}|{_num(tr)}|" + "|".join(cells) + "|")
        for key in (k for k in keys if k.startswith("loss")):
            png = Path(exp) / "images" / f"{key}.png"
            if png.is_file():
                rel = _link(png, images_dir, f"{curve.name}_{key}.png", out_dir)
                lines += ["", f"![{curve.name} {key}]({rel})"]
        lines.append("")
    return lines if found or len(lines) > 2 else []


def _trend(key: str, values: Sequence[Optional[float]]) -> str:
    """``falling: a -> b`` when the last known value is below the first (``loss`` is named
    without its key, as before the label heads)."""
    known = [x for x in values if x is not None]
    name = "" if key == "loss" else f"{key} "
    if len(known) < 2:
        return f"{name}one epoch"
    if known[-1] < known[0]:
        return f"{name}falling: {known[0]:.3f} -> {known[-1]:.3f}"
    return f"{name}NOT falling"


def _num(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.3f}"


def _reference_file(task: str) -> Optional[str]:
    spec = CLI_TASKS.get(task)
    if spec is None or spec.kind == "tts":
        return None
    if spec.kind == "understanding":
        return "text" if spec.transcribe else LABEL_BY_KIND[spec.labels[0]].file
    return "reply"


def _cell(text: str, limit: int = 120) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def examples_section(
    before_root: Path, after_root: Path, data_root: Path, per_set: int = 2
) -> List[str]:
    """A few hypotheses of the untrained model (``before_root``) and the trained one
    (``after_root``) beside their references, for every decode dir both hold.

    A decode dir is ``<root>/<name>/`` with ``decode_info`` (``set task think``) and
    ``text``; the references come from ``data_root/<set>``.
    """
    lines: List[str] = []
    for info in sorted(Path(before_root).glob("*/decode_info")):
        name = info.parent.name
        after = Path(after_root) / name
        set_name, task = info.read_text(encoding="utf-8").split()[:2]
        ref_name = _reference_file(task)
        files = [info.parent / "text", after / "text", Path(data_root) / set_name / str(ref_name)]
        if ref_name is None or not all(f.is_file() for f in files):
            continue
        before, trained, refs = (read_2columns_text(f) for f in files)
        utts = [u for u in sorted(before) if u in trained and u in refs][:per_set]
        if not utts:
            continue
        lines += ["", f"### {name} ({task})", "", "|utt|reference|before training|after training|",
                  "|---|---|---|---|"]
        for u in utts:
            lines.append(f"|{u}|{_cell(refs[u])}|{_cell(before[u])}|{_cell(trained[u])}|")
    if not lines:
        return []
    return [
        "## Hypotheses before and after training",
        "",
        "*Before*: the model built from the stage-1 config (pretrained parts loaded, new parts "
        "at their initial weights), before any training step; *after*: the final model.",
    ] + lines
