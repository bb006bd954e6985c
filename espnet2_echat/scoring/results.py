"""results.json / results.md of one set, RESULTS.md of an experiment, and the paper's numbers.

``results.json`` (docs/scoring.md): ``{"task", "num_utts", "metrics": {name: value}}``
(WER/CER and accuracies in percent, judge scores 0-100), plus an ``info`` block (test set,
dirs, think mode, rubric version, ASR model). ``RESULTS.md`` gathers every
``results.json`` below an experiment dir into ESPnet-style tables (environment first, one
table per task, one row per test set) and a comparison with the paper (docs/scoring.md#comparison-with-the-paper) for the
test sets whose name matches one of the paper's.
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from espnet2_echat.safety.atomic import atomic_write_text

# Preferred column order; other metrics follow alphabetically.
_ORDER = (
    "wer",
    "cer",
    "reply_wer",
    "reply_cer",
    "asr_wer",
    "asr_cer",
    "emotion_accuracy",
    "emotion_macro_f1",
    "gender_accuracy",
    "gender_macro_f1",
    "age_accuracy",
    "age_macro_f1",
    "event_accuracy",
    "event_macro_f1",
    "reply_emotion_accuracy",
    "judge_emotion",
    "judge_age",
    "judge_gender",
    "judge_event",
    "judge_multi",
)


@dataclass(frozen=True)
class PaperResult:
    """One number the OSUM-EChat paper reports (docs/scoring.md#comparison-with-the-paper)."""

    benchmark: str  # the paper's name of the test set
    aliases: Tuple[
        str, ...
    ]  # data-dir names that denote it (compared without _-. and case)
    task: str
    metric: str
    value: float
    table: str


def _p(benchmark, aliases, task, metric, value, table) -> PaperResult:
    return PaperResult(benchmark, tuple(aliases), task, metric, value, table)


# fmt: off
PAPER_RESULTS: Tuple[PaperResult, ...] = (
    _p("WenetSpeech test-net", ["wenetspeech_test_net", "test_net"], "asr", "cer", 6.47, "table4"),
    _p("WenetSpeech test-meeting", ["wenetspeech_test_meeting", "test_meeting"], "asr", "cer", 9.90, "table4"),
    _p("AISHELL-2 mic", ["aishell2_mic", "aishell2_test_mic"], "asr", "cer", 2.89, "table4"),
    _p("AISHELL-2 ios", ["aishell2_ios", "aishell2_test_ios"], "asr", "cer", 3.04, "table4"),
    _p("AISHELL-2 android", ["aishell2_android", "aishell2_test_android"], "asr", "cer", 2.89, "table4"),
    _p("LibriSpeech test-clean", ["librispeech_test_clean", "test_clean"], "asr", "wer", 2.46, "table4"),
    _p("LibriSpeech test-other", ["librispeech_test_other", "test_other"], "asr", "wer", 5.93, "table4"),
    _p("VocalSound", ["vocalsound", "vocalsound_test"], "event", "event_accuracy", 82.58, "table4"),
    _p("MMAU-Sound", ["mmau_sound"], "event", "event_accuracy", 45.05, "table4"),
    _p("MELD", ["meld", "meld_test"], "emotion", "emotion_accuracy", 51.23, "table4"),
    _p("MER2023", ["mer2023", "mer2023_test"], "emotion", "emotion_accuracy", 85.93, "table4"),
    _p("AISHELL-1 (gender)", ["aishell1_gender", "aishell_gender"], "gender", "gender_accuracy", 100.0, "table4"),
    _p("Kaggle-CommonVoice (gender)", ["kaggle_commonvoice_gender", "commonvoice_gender"], "gender",
       "gender_accuracy", 99.67, "table4"),
    _p("Kaggle-CommonVoice (age)", ["kaggle_commonvoice_age", "commonvoice_age"], "age", "age_accuracy", 83.77,
       "table4"),
    _p("Seed-TTS-eval zh", ["seedtts_zh", "seed_tts_eval_zh"], "tts", "asr_cer", 3.00, "table5"),
    _p("Seed-TTS-eval en", ["seedtts_en", "seed_tts_eval_en"], "tts", "asr_wer", 3.99, "table5"),
    # EChat-eval, GPT-4o automatic score (table 1), for S2S and S2T chat decodes alike
    *(
        _p(f"EChat-eval {dim}", [f"echat_eval_{dim}", "echat_eval"], task, f"judge_{dim}", value, "table1")
        for task in ("s2s", "s2t_chat")
        for dim, value in (("emotion", 58.0), ("age", 63.1), ("gender", 62.7), ("event", 87.1), ("multi", 72.0))
    ),
)
# fmt: on


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def paper_matches(
    test_set: str, task: str, metrics: Dict[str, Optional[float]]
) -> List[Tuple[PaperResult, float]]:
    """The paper's numbers for this test set and task, with our value of the same metric."""
    key = _key(test_set)
    return [
        (p, metrics[p.metric])
        for p in PAPER_RESULTS
        if p.task == task
        and key in {_key(a) for a in p.aliases}
        and metrics.get(p.metric) is not None
    ]


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.2f}"
    return str(int(value)) if isinstance(value, (int, float)) else str(value)


def _columns(metrics_list: Sequence[Dict[str, Optional[float]]]) -> List[str]:
    names = set().union(*metrics_list)
    return [m for m in _ORDER if m in names] + sorted(names - set(_ORDER))


def markdown_table(rows: Sequence[dict]) -> str:
    """One markdown table of ``results.json`` dicts that share a task (a row per set)."""
    cols = _columns([r["metrics"] for r in rows])
    lines = [
        "|dataset|Snt|" + "|".join(cols) + "|",
        "|---|---|" + "|".join("---" for _ in cols) + "|",
    ]
    for r in rows:
        cells = [_fmt(r["metrics"].get(c)) for c in cols]
        lines.append(
            f"|{r['info'].get('test_set', '?')}|{r['num_utts']}|"
            + "|".join(cells)
            + "|"
        )
    return "\n".join(lines) + "\n"


def write_results(results: dict, out_dir: Path) -> None:
    """Write ``results.json`` and a one-table ``results.md`` into ``out_dir``."""
    out_dir = Path(out_dir)
    atomic_write_text(
        out_dir / "results.md", f"### {results['task']}\n\n" + markdown_table([results])
    )
    # results.json last: the recipe treats it as the mark of a finished scoring
    atomic_write_text(out_dir / "results.json", json.dumps(results, ensure_ascii=False, indent=2))


def _environment() -> List[str]:
    import torch

    try:
        import espnet

        espnet_version = espnet.__version__
    except (
        Exception
    ):  # espnet is a hard dependency; report rather than crash the summary
        espnet_version = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return [
        f"- date: `{time.strftime('%Y-%m-%d %H:%M:%S %Z')}`",
        f"- python version: `{platform.python_version()}`",
        f"- espnet version: `espnet {espnet_version}`",
        f"- pytorch version: `pytorch {torch.__version__}`",
        f"- Git hash: `{commit}`",
    ]


def _group_name(exp_dir: Path, results_json: Path, info: dict) -> str:
    """Heading of a result: the decode root (the dir holding the test-set dirs).

    That is the parent of ``info["decode_dir"]``, or, without it, the dir two levels above
    ``results.json`` (``<decode root>/<test set>/score/results.json``), relative to
    ``exp_dir`` (``exp_dir``'s own name when it is the decode root itself).
    """
    root = Path(info["decode_dir"]).resolve().parent if info.get("decode_dir") else None
    if root is None or not root.is_relative_to(exp_dir.resolve()):
        root = results_json.resolve().parents[2]
    if not root.is_relative_to(exp_dir.resolve()):
        return exp_dir.name
    rel = root.relative_to(exp_dir.resolve())
    return exp_dir.name if rel == Path(".") else str(rel)


@dataclass
class ResultsExtras:
    """What RESULTS.md shows beyond the metric tables (``scoring/results_sections.py``)."""

    train_dirs: Sequence[Path] = ()  # training exp dirs: validation loss per epoch, curves
    before_root: Optional[Path] = None  # decodes of the untrained model
    data_root: Optional[Path] = None  # the data dirs of the references (before/after)
    images_dir: Optional[Path] = None  # where the pictures go (default: beside RESULTS.md)
    examples_per_set: int = 2


def _extra_sections(
    exp_dir: Path, out: Path, rows: List[Tuple[Path, dict]], extras: ResultsExtras
) -> List[str]:
    from espnet2_echat.scoring import results_sections as sec

    out_dir = Path(out).resolve().parent
    images = Path(extras.images_dir or out_dir / "images")
    lines = sec.chance_section([r for _, r in rows])
    lines += [""] + sec.confusion_section(rows, images, out_dir)
    lines += [""] + sec.training_section(extras.train_dirs, images, out_dir)
    if extras.before_root is not None and extras.data_root is not None:
        lines += [""] + sec.examples_section(
            extras.before_root, exp_dir, extras.data_root, extras.examples_per_set
        )
    return [""] + lines


def write_results_md(
    exp_dir: Path,
    out: Path,
    model_info: Optional[Dict[str, str]] = None,
    extras: Optional[ResultsExtras] = None,
) -> int:
    """Collect every ``results.json`` under ``exp_dir`` into ESPnet-style ``RESULTS.md``,
    with the sections of ``extras`` (labels against chance, confusion matrices, training
    curves, hypotheses before and after training) when given.

    Returns the number of result files found (0 is an error for the recipe).
    """
    exp_dir = Path(exp_dir)
    files = sorted(exp_dir.rglob("results.json"))
    if not files:
        raise FileNotFoundError(
            f"no results.json under {exp_dir}; run echat_score first"
        )
    by_model: Dict[str, Dict[str, List[dict]]] = {}
    rows_read: List[Tuple[Path, dict]] = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            res = json.load(f)
        res.setdefault("info", {}).setdefault("test_set", path.parent.name)
        rows_read.append((path, res))
        model = _group_name(exp_dir, path, res["info"])
        by_model.setdefault(model, {}).setdefault(res["task"], []).append(res)
    lines = [
        "<!-- Generated by espnet2_echat.bin.echat_results -->",
        "# RESULTS",
        "## Environments",
    ]
    lines += _environment()
    for key, value in (model_info or {}).items():
        lines.append(f"- {key}: `{value}`")
    comparison: List[str] = []
    for model, tasks in sorted(by_model.items()):
        lines += ["", f"## {model}"]
        for task, rows in sorted(tasks.items()):
            rows.sort(key=lambda r: r["info"]["test_set"])
            lines += ["", f"### {task}", "", markdown_table(rows).rstrip()]
            for r in rows:
                for p, ours in paper_matches(r["info"]["test_set"], task, r["metrics"]):
                    comparison.append(
                        f"|{model}|{r['info']['test_set']}|{p.benchmark}|{p.metric}|{_fmt(ours)}|{_fmt(p.value)}|{p.table}|"
                    )
    if extras is not None:
        lines += _extra_sections(exp_dir, out, rows_read, extras)
    lines += ["", "## Comparison with the paper (OSUM-EChat)", ""]
    if comparison:
        lines += [
            "|model|dataset|paper test set|metric|ours|paper|paper table|",
            "|---|---|---|---|---|---|---|",
        ]
        lines += comparison
    else:
        lines.append(
            "No test set here matches one of the paper's (names are matched as listed in "
            "`espnet2_echat/scoring/results.py`)."
        )
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(files)
