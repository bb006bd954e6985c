"""benchmarks/lora_memory.py on the tiny geometry: what it reports matches the tensors."""

from pathlib import Path

import pytest
import torch

from benchmarks.lora_memory import make_batch, measure_step, parse_config
from espnet2_echat.tasks.echat import EChatTask

REPO = Path(__file__).resolve().parents[2]
# the LoRA config's training settings on the tiny model
TINY_LORA = ["--config", "conf/train_stage2_generation.yaml", "--trainable_parts",
             "link_and_lora", "--use_lora", "true", "--gradient_checkpointing", "true",
             "--use_amp", "true"]


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


@pytest.fixture(scope="module")
def stepped():
    """One measured step of the tiny model (report, model, optimizer)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        return measure_step(TINY_LORA, tokens=96, steps=1)


def test_tiny_lora_step_report_matches_the_tensors(stepped):
    report, model, optimizer = stepped

    trainable = [p for p in model.parameters() if p.requires_grad]
    # the same parameters as the task's own build (init skipped, ties kept: the tied
    # lm_head must not come back as a second matrix)
    torch.manual_seed(0)
    reference = EChatTask.build_model(parse_config(TINY_LORA))
    assert report["params"] == sum(p.numel() for p in reference.parameters())
    assert [(n, p.shape, p.requires_grad) for n, p in model.named_parameters()] == [
        (n, p.shape, p.requires_grad) for n, p in reference.named_parameters()
    ]
    head = model.llm.causal_lm
    assert head.get_output_embeddings().weight is head.get_input_embeddings().weight
    assert trainable and all(
        n.startswith(("adapter.", "llm.speech_")) or "lora_" in n
        for n, p in model.named_parameters() if p.requires_grad
    )
    assert report["trainable_param_bytes_gb"] * 1e9 == sum(
        p.numel() * p.element_size() for p in trainable
    )
    assert report["param_bytes_gb"] * 1e9 == sum(
        p.numel() * p.element_size() for p in {id(p): p for p in model.parameters()}.values()
    )
    # AdamW: two fp32 moments per trainable parameter (plus a scalar step each)
    moments = sum(t.numel() * t.element_size() for s in optimizer.state.values()
                  for k, t in s.items() if k != "step")
    assert moments == 2 * sum(p.numel() * 4 for p in trainable)
    run = report["runs"][0]
    assert run["optimizer_state_bytes_gb"] * 1e9 >= moments
    assert len(optimizer.state) == len(trainable)  # every trainable weight got a gradient

    step = run["steps"][0]
    assert step["grad_bytes_gb"] == report["trainable_param_bytes_gb"]  # frozen: no grads
    assert all(p.grad is None for p in model.parameters())  # zero_grad after the step
    assert report["autocast"] == "cpu bfloat16" and report["gradient_checkpointing"]
    assert report["llm_layers_checkpointed"] == model.llm.causal_lm.config.num_hidden_layers
    assert torch.isfinite(torch.tensor(step["loss"]))
    # the batch fills the token budget: audio rows + ids = --tokens
    shape = run["batch_shape"]
    assert shape["llm_positions"] == 96 and shape["audio_rows"] == [shape["audio_rows_estimated"]]
    # (resident-set figures of a tiny model are not checked here: in a long-lived test
    # process small tensors reuse freed heap pages; test_meter_sees_a_large_allocation
    # checks the measurement itself)


def test_frozen_weights_get_no_gradient_in_the_step(stepped):
    """Gradients exist right after backward for trainable weights only."""
    args = parse_config(TINY_LORA)
    model = stepped[1]
    data, shape = make_batch(model, args, tokens=64)
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(**data)[0]
    loss.backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name
    assert shape["supervised_rows"] == 64 - shape["audio_rows_estimated"] - 12 - 1


def test_batch_too_small_for_its_audio_is_refused(stepped):
    args = parse_config(TINY_LORA)
    model = stepped[1]
    with pytest.raises(ValueError, match="no reply"):
        make_batch(model, args, tokens=40, audio_seconds=3.0)


def test_meter_sees_a_large_allocation():
    """The CPU meter's per-phase peak sees 200 MB allocated and freed inside a phase, and
    nothing in a phase that allocates nothing, whether or not the allocator gives the freed
    block back to the system."""
    from benchmarks.lora_memory import Meter

    meter = Meter(torch.device("cpu"))
    if not meter.can_reset:
        pytest.skip("/proc/self/clear_refs is not writable here")
    block = torch.ones(50_000_000)  # 200 MB, every page written
    del block
    allocated = meter.stop("allocate")
    idle = meter.stop("idle")
    assert allocated["rise_gb"] >= 0.19
    assert idle["rise_gb"] < 0.05
