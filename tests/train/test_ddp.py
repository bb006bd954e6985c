"""Distributed data-parallel training the ESPnet way, on CPU: two processes (gloo) started
with the options ``espnet2.bin.launch`` gives each rank (``--dist_rank``, ``--dist_world_size``,
a shared ``file://`` init method, ``--dist_backend gloo`` for ``--ngpu 0``) end with the same
weights as one process on the same global batches, also when one rank is killed halfway and
the run is resumed with ``--resume true``.

Why equal weights are expected: ESPnet splits every batch across the ranks
(``b[rank::world]``), averages the rank losses weighted by the model's ``weight`` and DDP
averages gradients. The model's loss is a mean over supervised tokens and its ``weight`` is
that token count, so the weighted average over ranks is the mean over every token of the
global batch: the one-process loss. The samples differ in text and audio length (padding
differs between one batch and its two halves), so a rank weight that is not the loss's
normaliser (e.g. the number of samples) gives other gradients and fails the test; one prompt
and no dropout or SpecAugment keep everything else equal.
That each rank gets its half of every batch is checked on the sampler itself
(``test_multi_task_sampler.py::test_distributed_ranks_split_each_batch``).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml

from espnet2_echat.data.datadir import write_data_dir

REPO = Path(__file__).resolve().parents[2]
FS = 16000
MAX_EPOCH = 3
# transcripts of different lengths: the two halves of a batch hold different token counts
TEXTS = ["good morning", "the weather is cold and wet in the north today",
         "please open the door", "yes", "we will meet again at the station after lunch",
         "thank you", "how are you", "it is late"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(module_tmp):
    root = module_tmp("ddp")
    dirs = {}
    for split, n in (("train", 8), ("valid", 2)):
        utts = {}
        for i in range(n):
            t = np.arange(int((0.3 + 0.13 * i) * FS)) / FS
            wav = root / "wav" / f"{split}{i}.wav"
            wav.parent.mkdir(exist_ok=True)
            soundfile.write(wav, 0.3 * np.sin(2 * np.pi * (200 + 60 * i) * t), FS, subtype="PCM_16")
            utts[f"{split}_{i:02d}"] = {"task": "<TRANSCRIBE>", "wav.scp": str(wav),
                                        "utt2spk": f"{split}_{i:02d}", "text": TEXTS[i % len(TEXTS)]}
        write_data_dir(root / split, utts)
        dirs[split] = root / split
    prompts = yaml.safe_load((REPO / "conf" / "prompt_config.yaml").read_text())
    one = {k: v[:1] for k, v in prompts.items()}  # one prompt: no random choice per rank
    (root / "prompts.yaml").write_text(yaml.safe_dump(one, allow_unicode=True))
    args = [
        "--config", str(REPO / "conf" / "train_stage1_understanding.yaml"),
        "--frontend", "whisper_logmel", "--encoder_conf", "dropout_rate=0.0",
        "--speech_adapter_conf", "dropout_rate=0.0",
        "--preprocessor_conf", f"prompt_config={root / 'prompts.yaml'}",
        "--train_data_dir", str(dirs["train"]), "--valid_data_dir", str(dirs["valid"]),
        "--batch_tokens", "100000", "--max_batch_size", "4", "--num_iters_per_epoch", "2",
        "--max_epoch", str(MAX_EPOCH), "--optim_conf", "lr=0.003", "--scheduler", "none",
        "--use_tensorboard", "false", "--keep_nbest_models", "10", "--seed", "3",
        "--ngpu", "0", "--resume", "true",
    ]
    return root, args


def start(args, out: Path, rank=None, world=None, init=None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "espnet2_echat.bin.echat_train", *args, "--output_dir", str(out)]
    if rank is not None:  # what espnet2.bin.launch passes each rank for --ngpu 0
        cmd += ["--multiprocessing_distributed", "false", "--dist_rank", str(rank),
                "--dist_world_size", str(world), "--dist_init_method", f"file://{init}",
                "--dist_backend", "gloo"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    log = open(out.parent / f"{out.name}.rank{rank}.log", "a")
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def loadable(path: Path) -> bool:
    """The file is written completely (torch.save is not atomic)."""
    try:
        return path.exists() and bool(weights(path))
    except (RuntimeError, OSError, EOFError):
        return False


def wait_all(procs, timeout=400):
    for p in procs:
        assert p.wait(timeout=timeout) == 0


def weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same(a: dict, b: dict, tol: float = 2e-5):
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    print(f"max abs weight difference: {worst:.3g}")
    assert worst <= tol, worst
    return worst


def test_two_processes_match_one_and_resume_after_a_rank_is_killed(setup):
    root, args = setup
    one = root / "one"
    two = root / "two"
    init = root / "dist_init"
    p1 = start(args, one)
    ranks = [start(args, two, r, 2, init) for r in range(2)]
    # kill rank 1 once the first epoch is saved; rank 0 then cannot go on (a job runner
    # would end it too)
    deadline = time.time() + 300
    while time.time() < deadline and not loadable(two / "1epoch.pth"):
        time.sleep(0.1)
    ranks[1].send_signal(signal.SIGKILL)
    ranks[0].send_signal(signal.SIGKILL)
    for p in ranks:
        p.wait()
    assert (two / "1epoch.pth").exists() and not (two / f"{MAX_EPOCH}epoch.pth").exists()
    wait_all([p1])
    # the first epoch of the 2-process run already equals the 1-process one
    assert_same(weights(one / "1epoch.pth"), weights(two / "1epoch.pth"))
    init.unlink(missing_ok=True)
    wait_all([start(args, two, r, 2, init) for r in range(2)])
    assert assert_same(weights(one / f"{MAX_EPOCH}epoch.pth"),
                       weights(two / f"{MAX_EPOCH}epoch.pth")) >= 0
    # the resumed run continued from the checkpoint rather than starting over
    log = (root / "two.rank0.log").read_text()
    assert log.count("1epoch results") == 1, "epoch 1 trained twice: no resume"
