"""DeepSpeed ZeRO-2 and ZeRO-3 (with CPU offload) train the tiny model through ESPnet's
``--use_deepspeed`` path, here on CPU in one process (gloo, no compiled DeepSpeed op), and
end where a plain ESPnet run with the same seed, optimiser and accumulation ends.

The DeepSpeed configs are the project's ``conf/full`` jsons with only the learning rate,
the accumulation and the mixed precision changed for the tiny run. Each DeepSpeed run is a
fresh ``echat_train`` process (as launched in a recipe): a process group and DeepSpeed's
communication backend live once per process.

The same tests run on one GPU (``--ngpu 1``, nccl) where CUDA is available; they carry the
``gpu`` marker (the device check: ``pytest -m gpu tests/train/test_deepspeed.py``).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from espnet2_echat.tasks.echat import EChatTask
from .corpus import make_corpus
from .test_training import mean_valid_loss, reporter_of, train_cmd

REPO = Path(__file__).resolve().parents[2]
FULL = REPO / "conf" / "full"
LR = 0.005
ACCUM = 2
MAX_EPOCH = 2
# 4 micro-batches per epoch: the accumulation boundary falls at each epoch's end, where
# ESPnet's and DeepSpeed's accumulation counters agree
COMMON = ["--scheduler", "none", "--accum_grad", str(ACCUM), "--num_iters_per_epoch", "4"]
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[
        pytest.mark.gpu,
        pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    ]),
]


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


def ngpu(device: str):
    return ["--ngpu", "1" if device == "cuda" else "0"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"), num_per_phrase=3)


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def derived_config(tmp_path: Path, name: str, *, bf16: bool, offload: bool = True,
                   scheduler: bool = False, optimizer: bool = True) -> Path:
    """``conf/full/<name>`` for the tiny run: every key kept, except lr, accumulation,
    bf16 on/off, optionally the offload, the scheduler (ESPnet's plain run has none) and
    the optimizer (then ESPnet's ``--optim`` is used)."""
    config = json.loads((FULL / name).read_text())
    config["gradient_accumulation_steps"] = ACCUM
    config["bf16"]["enabled"] = bf16
    config["optimizer"]["params"]["lr"] = LR
    if not optimizer:
        del config["optimizer"]
    if scheduler:
        config["scheduler"]["params"].update(warmup_max_lr=LR, warmup_num_steps=2)
    else:
        del config["scheduler"]
    if not offload:
        config["zero_optimization"].pop("offload_optimizer", None)
        config["zero_optimization"].pop("offload_param", None)
    path = tmp_path / f"{Path(name).stem}{'_bf16' if bf16 else ''}.json"
    path.write_text(json.dumps(config, indent=1))
    return path


def run_deepspeed(corpus, out: Path, config: Path, device: str, *extra: str) -> str:
    cmd = [sys.executable, "-m", "espnet2_echat.bin.echat_train"]
    cmd += train_cmd(corpus, out, *COMMON, *ngpu(device), "--use_deepspeed", "true",
                     "--deepspeed_config", str(config), *extra)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    # DeepSpeed's checkpoint folders: ESPnet took its DeepSpeed trainer, not the plain one
    assert (out / "checkpoint_1").is_dir() and not (out / "checkpoint.pth").exists(), log[-4000:]
    return log


def deepspeed_reporter(out: Path, epoch: int):
    from espnet2.train.reporter import Reporter

    # mp_rank_00_model_states.pt (ZeRO-2) or zero_pp_rank_0_mp_rank_00_model_states.pt (ZeRO-3)
    (path,) = (out / f"checkpoint_{epoch}" / str(epoch)).glob("*mp_rank_00_model_states.pt")
    state = torch.load(path, map_location="cpu", weights_only=False)
    reporter = Reporter()
    reporter.load_state_dict(state["reporter"])
    return reporter


@pytest.fixture(scope="module")
def plain_runs(corpus, tmp_path_factory):
    """ESPnet's own trainer: AdamW of the stage config at LR, grad clip 5, accumulation 2;
    one run per device, made on first use."""
    runs = {}

    def get(device: str) -> Path:
        if device not in runs:
            out = tmp_path_factory.mktemp(f"plain_{device}")
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                EChatTask.main(cmd=train_cmd(corpus, out, *COMMON, *ngpu(device)))
            finally:
                torch.set_num_threads(threads)
            runs[device] = out
        return runs[device]

    return get


def assert_same_weights(corpus, out: Path, plain_run: Path, device: str, tmp_path) -> float:
    """The final weights of the two runs agree, relative to how far training moved them."""
    final_ds = torch.load(out / f"{MAX_EPOCH}epoch.pth", map_location="cpu")
    final_plain = torch.load(plain_run / f"{MAX_EPOCH}epoch.pth", map_location="cpu")
    assert final_ds.keys() == final_plain.keys()
    initial = EChatTask.build_model(
        EChatTask.get_parser().parse_args(train_cmd(corpus, tmp_path / "x"))
    ).state_dict()
    # CPU: ZeRO-2 is bit-identical, ZeRO-3 within ~5e-6; a GPU's atomics add noise
    atol, rtol = (2e-5, 1e-3) if device == "cpu" else (1e-4, 2e-2)
    worst = 0.0
    for key, value in final_plain.items():
        if not value.is_floating_point():
            continue
        moved = (value - initial[key]).abs().max().item()  # 0 for buffers
        err = (final_ds[key].float() - value).abs().max().item()
        worst = max(worst, err)
        # the update, not only the weight, agrees: error well below the step taken
        assert err <= atol + rtol * moved, (key, err, moved)
    return worst


@pytest.mark.parametrize(
    "name, offload, optimizer",
    [
        ("ds_zero2.json", False, True),
        ("ds_zero3_offload.json", True, True),
        ("ds_zero2.json", False, False),
    ],
    ids=["zero2", "zero3_offload", "zero2_espnet_optim"],
)
def test_deepspeed_matches_plain_espnet_run(
    corpus, plain_runs, device, tmp_path, name, offload, optimizer
):
    plain_run = plain_runs(device)
    out = tmp_path / "ds"
    config = derived_config(tmp_path, name, bf16=False, offload=offload, optimizer=optimizer)
    run_deepspeed(corpus, out, config, device)

    stage = json.loads(config.read_text())["zero_optimization"]["stage"]
    shards = list((out / f"checkpoint_{MAX_EPOCH}" / str(MAX_EPOCH)).glob("*optim_states.pt"))
    assert shards, "no ZeRO optimizer shard: DeepSpeed's ZeRO path did not run"
    assert stage in (2, 3)

    # ESPnet's plain trainer logs the train loss divided by --accum_grad (its in-place
    # ``loss /= accum_grad`` reaches the detached stat), so train is compared on accuracy
    ds, plain = deepspeed_reporter(out, MAX_EPOCH), reporter_of(plain_run)
    for phase, key in (("train", "acc"), ("valid", "loss"), ("valid", "acc")):
        for epoch in range(1, MAX_EPOCH + 1):
            a, b = ds.get_value(phase, key, epoch), plain.get_value(phase, key, epoch)
            assert abs(a - b) <= 1e-3 * abs(b) + 1e-6, (phase, key, epoch, a, b)
    assert ds.get_value("valid", "loss", MAX_EPOCH) < ds.get_value("valid", "loss", 1)

    worst = assert_same_weights(corpus, out, plain_run, device, tmp_path)
    print(f"{name} on {device}: worst weight difference to the plain run {worst:.2e}")

    # the written model is a plain state dict that the strict loader reads back
    EChatTask.build_model_from_file(out / "config.yaml", out / "valid.loss.best.pth")


def test_deepspeed_bf16_with_its_scheduler_trains_and_loads(corpus, device, tmp_path):
    """The project's ZeRO-2 json as it is (bf16, DeepSpeed's WarmupLR): the loss falls and
    the fp32 weights gathered from the shards load strictly."""
    out = tmp_path / "ds"
    config = derived_config(tmp_path, "ds_zero2.json", bf16=True, scheduler=True)
    run_deepspeed(corpus, out, config, device)
    reporter = deepspeed_reporter(out, MAX_EPOCH)
    assert reporter.get_value("valid", "loss", MAX_EPOCH) < reporter.get_value("valid", "loss", 1)
    # ESPnet's --scheduler is none: the warm-up is DeepSpeed's WarmupLR from the json
    lrs = [reporter.get_value("train", "learning_rate", e) for e in range(1, MAX_EPOCH + 1)]
    assert 0 < lrs[0] < lrs[1] <= LR, lrs

    state = torch.load(out / "valid.loss.best.pth", map_location="cpu")
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    model, args = EChatTask.build_model_from_file(out / "config.yaml", out / "valid.loss.best.pth")
    args = EChatTask.get_parser().parse_args(train_cmd(corpus, tmp_path / "y"))
    torch.manual_seed(0)
    untrained = mean_valid_loss(EChatTask.build_model(args), args)
    trained = mean_valid_loss(model, args)
    assert trained < untrained - 0.3, (untrained, trained)


def test_deepspeed_resume_continues_to_the_same_weights(corpus, plain_runs, device, tmp_path):
    """ZeRO-2 stopped after epoch 1 and resumed from its DeepSpeed checkpoint ends where the
    uninterrupted plain run ends (optimizer moments and reporter restored)."""
    plain_run = plain_runs(device)
    out = tmp_path / "ds"
    config = derived_config(tmp_path, "ds_zero2.json", bf16=False, offload=False)
    run_deepspeed(corpus, out, config, device, "--max_epoch", "1")
    assert not (out / f"checkpoint_{MAX_EPOCH}").exists()
    run_deepspeed(corpus, out, config, device, "--resume", "true")
    reporter = deepspeed_reporter(out, MAX_EPOCH)
    assert reporter.get_epoch() == MAX_EPOCH
    plain = reporter_of(plain_run)
    for epoch in range(1, MAX_EPOCH + 1):
        a, b = reporter.get_value("valid", "loss", epoch), plain.get_value("valid", "loss", epoch)
        assert abs(a - b) <= 1e-3 * abs(b), (epoch, a, b)
    assert_same_weights(corpus, out, plain_run, device, tmp_path)
