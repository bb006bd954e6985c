"""RESULTS.md's extra sections from synthetic decode, score and training files: labels
against chance with the Wilson interval, a confusion matrix per label (table and picture),
every stage's validation loss per epoch (from an ESPnet Reporter's own log lines) with its
curve, and hypotheses before and after training beside their references."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from espnet2.train.reporter import Reporter

from espnet2_echat.scoring.intervals import wilson_interval
from espnet2_echat.scoring.results import ResultsExtras, write_results_md
from espnet2_echat.scoring.results_sections import confusion_table, parse_train_log
from espnet2_echat.scoring.score_decode import ScoreOptions, score_decode_dir
from tests.scoring.test_echat_score import write_dir

PNG = b"\x89PNG\r\n\x1a\n fake"
# references and outputs of 6 gender utterances: 4 right; f3 -> <MALE>, m3 -> no label
GENDER_REF = {"f1": "<FEMALE>", "f2": "<FEMALE>", "f3": "<FEMALE>", "m1": "<MALE>",
              "m2": "<MALE>", "m3": "<MALE>"}
GENDER_HYP = {"f1": "<FEMALE>", "f2": "<female>", "f3": "<MALE>", "m1": "<MALE>",
              "m2": "<MALE>", "m3": "I do not know"}


def train_log(path: Path, losses, extra=lambda loss: {}) -> None:
    """A train.log whose epoch lines are written by ESPnet's Reporter itself (``extra(loss)``:
    more stats of an epoch)."""
    reporter = Reporter()
    lines = []
    for epoch, (train_loss, valid_loss) in enumerate(losses, 1):
        reporter.set_epoch(epoch)
        for phase, loss in (("train", train_loss), ("valid", valid_loss)):
            with reporter.observe(phase) as sub:
                stats = {"loss": loss, "acc": 0.1 * epoch, **extra(loss)}
                sub.register({k: torch.tensor(v) for k, v in stats.items()})
                sub.next()
        lines.append(f"[host] 2026-01-01 00:00:00 (trainer:1) INFO: {reporter.log_message()}")
    path.mkdir(parents=True, exist_ok=True)
    (path / "train.log").write_text("some other line\n" + "\n".join(lines) + "\n")
    (path / "images").mkdir(exist_ok=True)
    (path / "images" / "loss.png").write_bytes(PNG)


@pytest.fixture
def recipe(tmp_path):
    """A dump dir, a scored decode root of the final model, a decode root of the untrained
    model and two training stages, laid out as echat.sh lays them out."""
    dump = tmp_path / "dump"
    utts = sorted(GENDER_REF)
    write_dir(dump / "test_gender", {
        "wav.scp": {u: f"/x/{u}.wav" for u in utts},
        "task": {u: "<GENDER>" for u in utts},
        "utt2gender": GENDER_REF,
    })
    write_dir(dump / "test_asr", {
        "wav.scp": {"a1": "/x/a1.wav", "a2": "/x/a2.wav"},
        "task": {"a1": "<TRANSCRIBE>", "a2": "<TRANSCRIBE>"},
        "text": {"a1": "GOOD MORNING", "a2": "THANK YOU"},
    })
    root = tmp_path / "exp" / "stage3" / "decode_valid.loss.ave"
    before = tmp_path / "exp" / "stage3" / "decode_before_training"
    hyps = {"test_gender": (GENDER_HYP, {u: "Hello there" for u in utts}),
            "test_asr": ({"a1": "good morning", "a2": "thank you"},
                         {"a1": "what", "a2": "a b c"})}
    task = {"test_gender": "gender", "test_asr": "asr"}
    for name, (after_hyp, before_hyp) in hyps.items():
        for r, h in ((root, after_hyp), (before, before_hyp)):
            write_dir(r / name, {"text": h})
            (r / name / "decode_info").write_text(f"{name} {task[name]} none\n")
        score_decode_dir(dump / name, root / name, root / name / "score", ScoreOptions())
    train_log(tmp_path / "exp" / "stage1", [(4.0, 3.5), (3.0, 2.75), (2.5, 2.25)])
    train_log(tmp_path / "exp" / "stage2", [(3.0, 2.0), (2.9, 2.5)])  # rising: said so
    return tmp_path, dump, root, before


def test_results_md_renders_every_section(recipe):
    tmp, dump, root, before = recipe
    out = tmp / "recipe" / "RESULTS.md"
    extras = ResultsExtras(train_dirs=[tmp / "exp" / "stage1", tmp / "exp" / "stage2"],
                           before_root=before, data_root=dump, examples_per_set=2)
    assert write_results_md(root, out, {"model": "m"}, extras) == 2
    md = out.read_text(encoding="utf-8")

    # labels against chance: 4 of 6 right; majority 3/6, uniform 1/2
    lo, hi = wilson_interval(4, 6)
    row = (f"|test_gender|gender|6|4|66.7|{100 * lo:.1f}-{100 * hi:.1f}|50.0|50.0 (1/2)|no|")
    assert row in md

    # confusion matrix counted by hand (rows FEMALE, MALE; columns + <NO_LABEL>)
    table = ("|reference \\ predicted|<FEMALE>|<MALE>|<NO_LABEL>|\n|---|---|---|---|\n"
             "|<FEMALE>|2|1|0|\n|<MALE>|0|2|1|")
    assert table in md
    png = out.parent / "images" / "confusion_test_gender_gender.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "](images/confusion_test_gender_gender.png)" in md

    # validation loss per epoch, as the Reporter logged it
    assert "### stage1 (falling: 3.500 -> 2.250)" in md
    assert "|2|3.000|2.750|0.200|" in md
    assert "### stage2 (NOT falling)" in md
    assert (out.parent / "images" / "stage1_loss.png").read_bytes() == PNG
    assert "](images/stage1_loss.png)" in md

    # hypotheses before and after, beside the reference
    assert "|a1|GOOD MORNING|what|good morning|" in md
    assert "|f1|<FEMALE>|Hello there|<FEMALE>|" in md
    assert "|f3|" not in md  # 2 examples per set
    sections = [l for l in md.splitlines() if l.startswith("## ")]
    assert sections[-4:] == [
        "## Confusion matrices", "## Training: validation loss per epoch",
        "## Hypotheses before and after training", "## Comparison with the paper (OSUM-EChat)",
    ]


def test_results_cli_with_extras(recipe):
    tmp, dump, root, before = recipe
    out = tmp / "R.md"
    subprocess.run(
        [sys.executable, "-m", "espnet2_echat.bin.echat_results", "--exp_dir", str(root),
         "--out", str(out), "--train_dirs", str(tmp / "exp" / "stage1"),
         "--before_dir", str(before), "--data_root", str(dump), "--images_dir",
         str(tmp / "pics")],
        check=True, capture_output=True,
    )
    md = out.read_text(encoding="utf-8")
    assert "](pics/stage1_loss.png)" in md and (tmp / "pics" / "stage1_loss.png").exists()
    assert "## Hypotheses before and after training" in md


def test_score_writes_the_confusion_matrix(recipe):
    _, _, root, _ = recipe
    res = json.loads((root / "test_gender" / "score" / "results.json").read_text())
    assert res["confusion"]["gender"] == {
        "labels": ["<FEMALE>", "<MALE>"],
        "columns": ["<FEMALE>", "<MALE>", "<NO_LABEL>"],
        "matrix": [[2, 1, 0], [0, 2, 1]],
    }
    assert "confusion" not in json.loads(
        (root / "test_asr" / "score" / "results.json").read_text())


def test_train_log_parsing_keeps_the_last_line_of_a_resumed_epoch(tmp_path):
    train_log(tmp_path / "s", [(4.0, 3.0)])
    log = tmp_path / "s" / "train.log"
    log.write_text(log.read_text() + log.read_text().replace("valid] loss=3.000", "valid] loss=2.000"))
    curve = parse_train_log(log)
    assert curve.valid == {1: {"loss": 2.0, "acc": pytest.approx(0.1), "total_count": 1.0}}
    assert curve.train[1]["loss"] == 4.0


def test_train_log_parsing_reads_the_logs_kept_from_earlier_runs(tmp_path):
    """A run killed after epochs 1-2 and resumed logs only epoch 3: the kept logs give the rest
    (train.log.2 sorts after train.log.10 by name, not by number: both are read in run order)."""
    train_log(tmp_path / "s", [(4.0, 3.0), (3.5, 2.5), (3.0, 2.0)])
    log = tmp_path / "s" / "train.log"
    lines = log.read_text().splitlines()
    (tmp_path / "s" / "train.log.1").write_text("\n".join(lines[:2]) + "\n")  # epoch 1
    (tmp_path / "s" / "train.log.2").write_text(lines[2].replace("loss=2.500", "loss=9.000"))
    (tmp_path / "s" / "train.log.10").write_text(lines[2] + "\n")  # epoch 2 again, later run
    (tmp_path / "s" / "train.log.x").write_text(lines[1].replace("loss=3.000", "loss=7.000"))
    log.write_text(lines[3] + "\n")  # the last run: epoch 3 only
    curve = parse_train_log(log)
    assert {e: v["loss"] for e, v in curve.valid.items()} == {1: 3.0, 2: 2.5, 3: 2.0}


def test_recipe_keeps_the_log_a_rerun_would_overwrite(tmp_path):
    """echat.sh's keep_log: an existing log moves to the next free .N, nothing is overwritten."""
    script = Path(__file__).parents[2] / "egs2" / "echat" / "echat1" / "echat.sh"
    text = script.read_text()
    start = text.index("keep_log() {")
    fn = text[start : text.index("\n}\n", start) + 3]
    log = tmp_path / "train.log"
    for run in ("first", "second", "third"):
        log.write_text(run)
        subprocess.run(["bash", "-c", f'{fn}\nkeep_log "$1"', "_", str(log)], check=True)
    assert not log.exists()
    assert [(tmp_path / f"train.log.{n}").read_text() for n in (1, 2, 3)] == [
        "first", "second", "third"]
    subprocess.run(["bash", "-c", f'{fn}\nkeep_log "$1"', "_", str(log)], check=True)


def test_confusion_table_shape():
    lines = confusion_table({"labels": ["<A>"], "columns": ["<A>", "<B>"], "matrix": [[3, 1]]})
    assert lines == ["|reference \\ predicted|<A>|<B>|", "|---|---|---|", "|<A>|3|1|"]


def test_training_section_shows_each_part_of_a_label_aux_objective(tmp_path):
    """With --label_aux_weight the LLM's loss and the heads' are logged beside the total:
    each gets its column, its trend and its plot."""
    from espnet2_echat.scoring.results_sections import training_section

    exp = tmp_path / "exp" / "stage1"
    # total = llm + 100 x aux; the LLM part rises while the total falls
    parts = {4.0: (2.0, 0.02), 3.0: (2.2, 0.008), 2.5: (2.3, 0.002)}
    train_log(exp, [(4.0, 4.0), (3.0, 3.0), (2.5, 2.5)],
              extra=lambda loss: {"loss_llm": parts[loss][0], "loss_label_aux": parts[loss][1]})
    (exp / "images" / "loss_llm.png").write_bytes(PNG)
    md = "\n".join(training_section([exp], tmp_path / "images", tmp_path))
    assert ("### stage1 (falling: 4.000 -> 2.500; loss_llm NOT falling; "
            "loss_label_aux falling: 0.020 -> 0.002)") in md
    assert "|epoch|train loss|valid loss|valid loss_llm|valid loss_label_aux|valid acc|" in md
    assert "|2|3.000|3.000|2.200|0.008|0.200|" in md
    assert "](images/stage1_loss_llm.png)" in md
    assert "stage1_loss_label_aux.png" not in md  # no plot, no link
