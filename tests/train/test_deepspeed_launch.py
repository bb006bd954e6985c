"""DeepSpeed through the recipe's launch path: ``espnet2.bin.launch --host h1,h2`` (ESPnet's
ssh launcher, how ``echat.sh --host ... --deepspeed_config ...`` trains) starts two CPU
ranks (gloo, DeepSpeed's CPU accelerator) that end with the weights of a one-process
DeepSpeed run of the same global batches (fp32 tolerance).

``ssh`` is a stand-in on PATH that records its arguments and runs the command here. The
corpus is test_ddp's: texts and audio of different lengths, so a rank weighting that is not
the loss's token normaliser shows as a weight difference."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .test_ddp import assert_same, setup, weights  # noqa: F401  (setup: the shared corpus)

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 1  # 2 optimizer steps: enough to compare the updates, short enough for CI

pytestmark = pytest.mark.slow


def fp32_zero2(path: Path) -> Path:
    """The project's ZeRO-2 json for a tiny fp32 run: no bf16, no warm-up, no accumulation."""
    config = json.loads((REPO / "conf" / "full" / "ds_zero2.json").read_text())
    config.update(gradient_accumulation_steps=1, bf16={"enabled": False})
    config["optimizer"]["params"]["lr"] = 0.003
    del config["scheduler"]
    path.write_text(json.dumps(config))
    return path


def fake_ssh(bin_dir: Path, record: Path) -> dict:
    """An ``ssh HOST CMD...`` that writes its arguments to ``record.<pid>`` and runs CMD here."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    ssh = bin_dir / "ssh"
    # one file per call ($$): the ranks start at once
    ssh.write_text('#!/usr/bin/env bash\necho "ssh $*" | tr "\\n" " " > "' + str(record)
                   + '.$$"\nshift\nexec bash -c "$*"\n')
    ssh.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(REPO),
            "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def test_deepspeed_two_ranks_through_launch_match_one_process(setup, tmp_path):  # noqa: F811
    root, args = setup
    config = fp32_zero2(tmp_path / "ds.json")
    train = [sys.executable, "-m", "espnet2_echat.bin.echat_train", *args,
             "--max_epoch", str(EPOCHS), "--resume", "false",
             "--use_deepspeed", "true", "--deepspeed_config", str(config)]
    record = tmp_path / "ssh.args"
    env = fake_ssh(tmp_path / "bin", record)

    one = tmp_path / "one"
    proc = subprocess.run([*train, "--output_dir", str(one)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    two = tmp_path / "two"
    launch = [sys.executable, "-m", "espnet2.bin.launch", "--host", "node-a,node-b",
              "--ngpu", "0", "--envfile", "none", "--log", str(tmp_path / "two.log"),
              "--init_file_prefix", str(tmp_path / ".dist_init_"), "--",
              *train, "--output_dir", str(two)]
    proc = subprocess.run(launch, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    log = (tmp_path / "two.log").read_text() if (tmp_path / "two.log").exists() else ""
    assert proc.returncode == 0, (proc.stderr + log)[-4000:]

    # both ranks went through the ssh launcher, each told its rank in a world of two
    calls = sorted(p.read_text() for p in tmp_path.glob(f"{record.name}.*"))
    assert [c.split()[1] for c in calls] == ["node-a", "node-b"], calls
    for rank, call in enumerate(calls):
        assert f"--dist_rank {rank} --dist_world_size 2" in call and "--use_deepspeed true" in call
        assert "--dist_backend gloo" in call and "--dist_init_method file://" in call
    # DeepSpeed's ZeRO-2 ran over two ranks (one optimizer shard each)
    shards = sorted((two / f"checkpoint_{EPOCHS}" / str(EPOCHS)).glob("*optim_states.pt"))
    assert len(shards) == 2, shards
    worst = assert_same(weights(one / f"{EPOCHS}epoch.pth"), weights(two / f"{EPOCHS}epoch.pth"))
    print(f"DeepSpeed ZeRO-2, 2 ranks via launch vs 1 process: max abs weight diff {worst:.3g}")
