"""Tiny training runs through ESPnet's trainer: the loss falls, and a SIGKILLed run resumes
to the same result as an uninterrupted one."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from espnet2.train.distributed_utils import DistributedOption
from espnet2.train.reporter import Reporter
from transformers import LlamaConfig

from espnet2_echat.data.datadir import DataDirError
from espnet2_echat.tasks.echat import EChatTask
from .corpus import make_corpus

REPO = Path(__file__).resolve().parents[2]
STAGE2 = REPO / "conf" / "train_stage2_generation.yaml"
MAX_EPOCH = 2


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"), num_per_phrase=3)


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # the configs name conf/... relative to the recipe root


def train_cmd(corpus, out_dir: Path, *extra: str):
    cmd = [
        "--config", str(STAGE2), "--require_init_param", "false",
        "--output_dir", str(out_dir), "--max_epoch", str(MAX_EPOCH),
        "--num_iters_per_epoch", "3", "--batch_tokens", "300",
        "--optim_conf", "lr=0.005", "--scheduler_conf", "warmup_steps=2",
        "--use_tensorboard", "false", "--keep_nbest_models", "1",
    ]
    for name in ("train_asr", "train_s2s:2", "train_tts", "train_t2t"):
        d, _, w = name.partition(":")
        cmd += ["--train_data_dir", str(corpus[d]) + (f":{w}" if w else "")]
    for name in ("valid_asr", "valid_s2s"):
        cmd += ["--valid_data_dir", str(corpus[name])]
    return cmd + list(extra)


def reporter_of(out_dir: Path) -> Reporter:
    state = torch.load(out_dir / "checkpoint.pth", map_location="cpu", weights_only=False)
    reporter = Reporter()
    reporter.load_state_dict(state["reporter"])
    return reporter


def mean_valid_loss(model, args) -> float:
    factory = EChatTask.build_iter_factory(args, DistributedOption(distributed=False), "valid")
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for _, batch in factory.build_iter(1):
            loss, _, weight = model(**batch)
            total += float(loss) * float(weight)
            count += float(weight)
    return total / count


@pytest.fixture(scope="module")
def uninterrupted(corpus, module_tmp):
    out = module_tmp("run_a")
    EChatTask.main(cmd=train_cmd(corpus, out))
    return out


def test_training_lowers_validation_loss(corpus, uninterrupted, tmp_path):
    args = EChatTask.get_parser().parse_args(train_cmd(corpus, tmp_path))
    torch.manual_seed(0)
    untrained = mean_valid_loss(EChatTask.build_model(args), args)
    model = EChatTask.build_model(args)
    state = torch.load(uninterrupted / "valid.loss.best.pth", map_location="cpu")
    model.load_state_dict(state)
    trained = mean_valid_loss(model, args)
    assert trained < untrained - 0.5, (untrained, trained)
    print(f"valid loss untrained {untrained:.3f} trained {trained:.3f}")
    # ESPnet's reporter logged the same curve and drew it
    reporter = reporter_of(uninterrupted)
    losses = [reporter.get_value("valid", "loss", e) for e in range(1, MAX_EPOCH + 1)]
    assert losses[-1] < losses[0]
    assert (uninterrupted / "images" / "loss.png").stat().st_size > 0


def _kill_during_epoch_2(cmd, out: Path, log: Path, wait: float) -> int:
    """Start training, SIGKILL it ``wait`` s after epoch 2 started; the epoch on record."""
    shutil.rmtree(out, ignore_errors=True)
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 240
        while f"2/{MAX_EPOCH}epoch started" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.time() < deadline, "epoch 2 never started"
            time.sleep(0.05)
        time.sleep(wait)  # inside epoch 2: after checkpoint 1, before checkpoint 2
    finally:
        proc.kill()  # SIGKILL
        proc.wait()
    return reporter_of(out).get_epoch()


def test_sigkill_then_resume_matches_uninterrupted(corpus, uninterrupted, tmp_path):
    out = tmp_path / "run_b"
    cmd = [sys.executable, "-m", "espnet2_echat.bin.echat_train"] + train_cmd(corpus, out)
    # a fast machine may finish epoch 2 within the wait: then the run is repeated and
    # killed as soon as epoch 2 starts
    epochs = []
    for wait in (0.5, 0.0):
        epochs.append(_kill_during_epoch_2(cmd, out, tmp_path / "train.log", wait))
        if epochs[-1] == 1:
            break
    assert epochs[-1] == 1, f"the kill did not fall between checkpoints: {epochs}"

    EChatTask.main(cmd=train_cmd(corpus, out, "--resume", "true"))

    resumed, reference = reporter_of(out), reporter_of(uninterrupted)
    assert resumed.get_epoch() == MAX_EPOCH
    for phase in ("train", "valid"):
        for epoch in range(1, MAX_EPOCH + 1):
            a = resumed.get_value(phase, "loss", epoch)
            b = reference.get_value(phase, "loss", epoch)
            assert abs(a - b) <= 1e-5, (phase, epoch, a, b)
    final_a = torch.load(out / f"{MAX_EPOCH}epoch.pth", map_location="cpu")
    final_b = torch.load(uninterrupted / f"{MAX_EPOCH}epoch.pth", map_location="cpu")
    for key, value in final_b.items():
        assert torch.allclose(final_a[key], value, atol=1e-5), key


def test_stage_without_init_model_fails_before_training(corpus, tmp_path):
    cmd = train_cmd(corpus, tmp_path / "x")
    cmd[cmd.index("--require_init_param") + 1] = "true"
    with pytest.raises(ValueError, match="--init_param"):
        EChatTask.main(cmd=cmd)
    assert not (tmp_path / "x" / "config.yaml").exists()
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        EChatTask.main(cmd=cmd + ["--init_param", str(tmp_path / "missing.pth")])


def test_unknown_module_is_a_usage_error(corpus, tmp_path):
    with pytest.raises(SystemExit) as err:
        EChatTask.get_parser().parse_args(
            train_cmd(corpus, tmp_path) + ["--encoder", "no_such_encoder"]
        )
    assert err.value.code == 2


def test_invalid_data_dir_fails_before_training(corpus, tmp_path):
    bad = tmp_path / "bad_asr"
    bad.mkdir()
    for name in ("task", "wav.scp", "utt2spk", "spk2utt"):
        (bad / name).write_text((corpus["valid_asr"] / name).read_text())
    # no "text" file: every <TRANSCRIBE> utterance lacks its transcript
    cmd = train_cmd(corpus, tmp_path / "x")
    args = EChatTask.get_parser().parse_args(cmd + ["--valid_data_dir", str(bad)])
    with pytest.raises(DataDirError, match="text"):
        EChatTask.build_iter_factory(args, DistributedOption(distributed=False), "valid")


def test_mixed_batches_span_data_dirs(corpus, tmp_path):
    args = EChatTask.get_parser().parse_args(
        train_cmd(corpus, tmp_path) + ["--homogeneous_batches", "false", "--batch_tokens", "3000"]
    )
    factory = EChatTask.build_iter_factory(args, DistributedOption(distributed=False), "train")
    batches = factory.sampler.generate(0)
    assert any(len({uid.split("/")[0] for uid in b}) > 1 for b in batches)
    keys, batch = next(iter(factory.build_iter(1)))
    assert batch["speech"].shape[0] == batch["input_ids"].shape[0] == len(keys)


def test_llama_family_llm_trains(corpus, tmp_path):
    """A Llama-architecture LLM (no q/k/v bias, GQA, untied embeddings) trains like Qwen2."""
    llm_dir = tmp_path / "llama_tiny"
    LlamaConfig(
        vocab_size=151936, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
    ).save_pretrained(llm_dir)
    out = tmp_path / "run_llama"
    cmd = train_cmd(corpus, out, "--llm_conf", f"name_or_path={llm_dir}")
    EChatTask.main(cmd=cmd)
    args = EChatTask.get_parser().parse_args(cmd)
    model = EChatTask.build_model(args)
    assert type(model.llm.causal_lm).__name__ == "LlamaForCausalLM"
    assert model.llm.causal_lm.model.layers[0].self_attn.q_proj.bias is None
    reporter = reporter_of(out)
    losses = [reporter.get_value("valid", "loss", e) for e in range(1, MAX_EPOCH + 1)]
    assert losses[-1] < losses[0], losses
    torch.manual_seed(0)
    untrained = mean_valid_loss(EChatTask.build_model(args), args)
    model.load_state_dict(torch.load(out / "valid.loss.best.pth", map_location="cpu"))
    assert mean_valid_loss(model, args) < untrained - 0.5
