"""The recipe end to end on a reduced embedded corpus: every stage's outputs exist and are
well-formed, a finished stage re-runs as a no-op, and a training stage killed halfway re-runs
cleanly. Runs the real ./run.sh (several minutes on 2 cores)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[2] / "egs2" / "echat" / "echat1"
SMALL_TRAIN = (
    "--max_epoch 1 --num_iters_per_epoch 2 --batch_tokens 300 --use_tensorboard false"
)

pytestmark = pytest.mark.slow


def recipe_cmd(work: Path, *args: str) -> list:
    return [
        "./run.sh", "--size", "tiny", "--datadir", str(work / "data"), "--dumpdir", str(work / "dump"),
        "--expdir", str(work / "exp"), "--mini_corpus_opts", "--num_per_task 2",
        "--standin_vocab_size", "16", "--train_args", SMALL_TRAIN,
        "--token2wav_config", "conf/token2wav/train_tiny.yaml",
        "--test_sets", "test_asr test_s2s_tag_think test_tts", "--max_decode_utts", "2",
        "--inference_args", "--do_sample false --max_new_tokens 4 --max_new_speech_tokens 8",
        "--score_args", "", "--before_decode_utts", "1", *args,
    ]


def run(work: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    cmd = recipe_cmd(work, *args)
    out = subprocess.run(cmd, cwd=RECIPE, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def work(module_tmp):
    work = module_tmp("recipe")
    run(work, "--stop_stage", "4")
    return work


def test_data_stages(work):
    dump = work / "dump"
    for name in ("train_asr", "dev_s2s_tag_think", "test_tts", "train_tts"):
        d = dump / name
        assert (d / ".done").exists() and (d / "wav.scp").exists(), name
    tokens = (dump / "train_tts" / "speech_token").read_text().splitlines()
    assert tokens and all(0 <= int(t) < 16 for line in tokens for t in line.split()[1:])


def _diagnose_label_path(work):
    cmd = [sys.executable, "-m", "espnet2_echat.bin.diagnose_label_path",
           "--config", "conf/train_stage1_understanding.yaml", "--data_root", str(work / "dump"),
           "--label", "gender", "--mode", "oracle", "--steps", "40", "--batch_size", "2",
           "--lr", "3e-3", "--heldout_split", "dev", "--num_heldout", "2", "--eval_every", "40",
           "--nthreads", "1"]
    out = subprocess.run(cmd, cwd=RECIPE, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    losses = [float(x) for x in re.findall(r"^step \d+ loss ([0-9.]+)$", out.stdout, re.M)]
    assert len(losses) == 40 and losses[-1] < 0.5 * losses[0], losses
    assert re.search(r"^step 40 held-out gender accuracy [0-9.]+ % of 2$", out.stdout, re.M)
    return out.stdout


def test_label_path_diagnostic(work):
    """``diagnose_label_path`` trains on a label set and prints the held-out label
    accuracy; in oracle mode (a learned vector per label in place of the last audio frame)
    the training loss falls. Without dumped encoder outputs the audio is encoded at every
    step; once the training dir is dumped it reads the dump, as the recipe trains with
    ``--encoder_cache true``."""
    live = _diagnose_label_path(work)
    assert "encoder outputs: computed from the audio at every step" in live
    train_dir = work / "dump" / "train_gender"
    # (dump_encoder_outputs' CLI refuses the tiny config, whose encoder has no fixed weights;
    # the diagnostic only needs outputs made by an encoder of the config's fingerprint)
    from espnet2_echat.tasks.echat import EChatTask
    from espnet2_echat.train.encoder_cache import dump_encoder_outputs, encoder_fingerprint

    args = EChatTask.get_parser().parse_args(
        ["--config", str(RECIPE / "conf" / "train_stage1_understanding.yaml"),
         "--output_dir", str(work / "diagnose_dump")])
    model = EChatTask.build_model(args).eval()
    dump_encoder_outputs(model.frontend, model.encoder, [train_dir],
                         work / "dump" / "encoder_out_diagnose", encoder_fingerprint(args),
                         "float32")
    try:
        cached = _diagnose_label_path(work)
        assert f"encoder outputs: dumped ({train_dir})" in cached
    finally:  # later tests of this module read the dir as the recipe made it
        for name in ("encoder_out.scp", "encoder_out.json"):
            (train_dir / name).unlink(missing_ok=True)


def test_finished_stage_is_skipped(work):
    before = {p: p.stat().st_mtime for p in (work / "dump").rglob("speech_token")}
    out = run(work, "--stage", "1", "--stop_stage", "3")
    assert "already prepared, skipping" in out.stdout
    after = {p: p.stat().st_mtime for p in (work / "dump").rglob("speech_token")}
    assert before == after


def test_killed_training_reruns_cleanly(work):
    """Kill stage 5 while it trains, re-run it: it resumes and finishes."""
    exp = work / "exp" / "echat_stage1_understanding"
    cmd = recipe_cmd(work, "--stage", "5", "--stop_stage", "5",
                     "--train_args", SMALL_TRAIN.replace("--max_epoch 1", "--max_epoch 3"))
    proc = subprocess.Popen(cmd, cwd=RECIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (exp / "checkpoint.pth").exists():
        time.sleep(1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (exp / "checkpoint.pth").exists() and not (exp / ".done").exists()
    run(work, "--stage", "5", "--stop_stage", "5",
        "--train_args", SMALL_TRAIN.replace("--max_epoch 1", "--max_epoch 3"))
    assert (exp / ".done").exists() and (exp / "valid.loss.ave.pth").exists()
    assert "3epoch.pth" in {p.name for p in exp.iterdir()}


def test_remaining_stages(work):
    run(work, "--stage", "6", "--stop_stage", "12", "--replay_weight", "0.5")
    final = work / "exp" / "echat_stage3_empathy_tag"
    # --replay_weight: stages 2 and 3 also train on the earlier stages' sets, with that weight
    stage2 = (work / "exp" / "echat_stage2_generation" / "config.yaml").read_text()
    stage3 = (final / "config.yaml").read_text()
    assert "train_asr:0.5" in stage2 and "train_s2s:0.5" not in stage2
    assert "train_asr:0.5" in stage3 and "train_s2s:0.5" in stage3
    assert "train_s2s_tag_think:0.5" not in stage3
    assert (final / "valid.loss.ave.pth").exists() and (final / "images" / "loss.png").exists()
    assert (work / "exp" / "token2wav" / ".done").exists()
    decode = final / "decode_valid.loss.ave"
    asr_text = (decode / "test_asr" / "text").read_text().splitlines()
    assert len(asr_text) == 2
    tts = decode / "test_tts"
    assert len((tts / "speech_token").read_text().splitlines()) == 2
    wavs = (tts / "wav.scp").read_text().splitlines()
    assert len(wavs) == 2 and all(Path(line.split(maxsplit=1)[1]).exists() for line in wavs)
    results = json.loads((decode / "test_asr" / "score" / "results.json").read_text())
    assert results["task"] == "asr" and results["num_utts"] == 2 and "wer" in results["metrics"]
    md = (final / "RESULTS.md").read_text()
    assert "test_asr" in md
    # each stage's validation loss, and the untrained model's hypotheses beside the final's
    assert "### echat_stage1_understanding (" in md and "### token2wav (" in md
    assert (final / "images" / "echat_stage2_generation_loss.png").exists()
    before = final / "decode_before_training" / "test_asr" / "text"
    assert len(before.read_text().splitlines()) == 1
    assert "## Hypotheses before and after training" in md
    packed = list(final.glob("*.zip"))
    assert len(packed) == 1
    assert (final / "hf_upload" / "README.md").exists()
    assert (final / "hf_upload" / "meta.yaml").exists()
