"""What trains in each stage (docs/training.md#stages), LoRA training and merging, overfitting one batch."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from espnet2.utils.yaml_no_alias_safe_dump import yaml_no_alias_safe_dump

from espnet2_echat.tasks.echat import EChatTask
from espnet2_echat.tasks.strict_loading import load_state_dict_strict
from espnet2_echat.tasks.merge_lora import merge_lora_model_file
from espnet2_echat.train.lora import merge_lora
from .corpus import REPLIES, tokens_for, tone

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
LLM_PREFIX = "llm.causal_lm."


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def build(tmp_path, config: str, *extra: str):
    args = EChatTask.get_parser().parse_args(
        ["--config", str(CONF / config), "--output_dir", str(tmp_path)] + list(extra)
    )
    torch.manual_seed(0)
    return EChatTask.build_model(args), args


def s2s_batch(args):
    """Two S2S samples through the task's own preprocessor and collate function."""
    pre = EChatTask.build_preprocess_fn(args, train=False)
    collate = EChatTask.build_collate_fn(args, train=False)
    samples = []
    for i in range(2):
        data = {"task": "<S2TCHAT> <TEXT2TOKEN>", "reply": REPLIES[i],
                "speech_token": tokens_for(i), "speech": tone(220.0 * (i + 1), 0.5, i)}
        samples.append((f"u{i}", pre(f"u{i}", data)))
    return collate(samples)[1]


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def train_steps(model, batch, steps=1, lr=1e-3):
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        loss, _, _ = model(**batch)
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(float(loss.detach()))
    return losses


def changed(before, model):
    return {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}


@pytest.mark.parametrize(
    "config, trains_llm",
    [("full/train_stage1_understanding.yaml", False), ("full/train_stage2_generation.yaml", True)],
)
def test_stage_freezes_what_spec_5_1_says(tmp_path, config, trains_llm):
    """The full-size stages' trainable parts, applied to the tiny geometry."""
    parts = yaml.safe_load((CONF / config).read_text())["trainable_parts"]
    model, args = build(tmp_path, "train_stage2_generation.yaml", "--trainable_parts", parts)
    before = snapshot(model)
    train_steps(model, s2s_batch(args))
    moved = changed(before, model)
    names = set(before)
    llm = {n for n in names if n.startswith(LLM_PREFIX)}
    # encoder, adapter and the speech tables train in every stage
    rest = names - llm
    assert rest <= moved, sorted(rest - moved)[:5]
    assert any(n.startswith("encoder.") for n in moved)
    assert {"llm.speech_head.weight", "llm.speech_embedding.weight"} <= moved
    if trains_llm:
        assert llm <= moved, sorted(llm - moved)[:5]
    else:
        assert not (llm & moved), sorted(llm & moved)[:5]
        assert all(not p.requires_grad for n, p in model.named_parameters() if n in llm)


def test_lora_trains_adapters_only_and_merges_exactly(tmp_path):
    lora = ["--use_lora", "true", "--lora_conf", "r=4", "--lora_conf", "dropout=0.0"]
    model, args = build(tmp_path, "train_stage2_generation.yaml", *lora)
    batch = s2s_batch(args)
    before = snapshot(model)
    train_steps(model, batch, steps=2, lr=1e-2)
    moved = changed(before, model)
    lora_names = {n for n in before if "lora_" in n}
    assert lora_names and lora_names <= moved
    base = {n for n in before if n.startswith(LLM_PREFIX) and "lora_" not in n}
    assert not (base & moved)
    assert any(n.startswith("encoder.") for n in moved)

    # save as ESPnet does, merge through the file API, load strictly into a LoRA-free model
    model.eval()
    with torch.no_grad():
        loss_lora = float(model(**batch)[0])
    config = tmp_path / "config.yaml"
    with config.open("w") as f:
        yaml_no_alias_safe_dump(vars(args), f)
    torch.save(model.state_dict(), tmp_path / "model.pth")
    out_config, out_model = merge_lora_model_file(config, tmp_path / "model.pth", tmp_path / "m")
    merged, merged_args = EChatTask.build_model_from_file(out_config, out_model)
    assert merged_args.use_lora is False
    assert not any("lora_" in n for n in merged.state_dict())
    merged.eval()
    with torch.no_grad():
        loss_merged = float(merged(**batch)[0])
    assert abs(loss_merged - loss_lora) < 1e-5
    # the in-memory merge gives the same weights
    assert merge_lora(model.llm.causal_lm) > 0
    load_state_dict_strict(merged, model.state_dict(), "in-memory merge")


def test_tiny_model_overfits_a_tiny_batch(tmp_path):
    model, args = build(tmp_path, "train_stage2_generation.yaml", "--encoder_conf",
                        "dropout_rate=0.0")
    losses = train_steps(model, s2s_batch(args), steps=20, lr=1e-2)
    assert losses[0] > 10 and losses[-1] < 1.0, losses[::5]
    assert np.all(np.isfinite(losses))


def test_mixed_batch_with_a_text_only_sample(tmp_path):
    """A T2T sample (empty waveform) batched with an ASR sample gives the token-weighted
    mean of the two samples' losses."""
    model, args = build(tmp_path, "train_stage2_generation.yaml")
    model.eval()
    pre = EChatTask.build_preprocess_fn(args, train=False)
    collate = EChatTask.build_collate_fn(args, train=False)
    samples = [
        ("t2t", pre("t2t", {"task": "<TEXT2TEXT>", "question": "hi?", "reply": REPLIES[0]})),
        ("asr", pre("asr", {"task": "<TRANSCRIBE>", "text": "good morning",
                            "speech": tone(440.0, 0.5, 0)})),
    ]
    assert samples[0][1]["speech"].shape == (0,)
    with torch.no_grad():
        mixed = float(model(**collate(samples)[1])[0])
        single = [float(model(**collate([s])[1])[0]) for s in samples]
    counts = [int((s["target"] != -100).sum()) for _, s in samples]  # supervised targets
    expected = sum(l * n for l, n in zip(single, counts)) / sum(counts)
    assert abs(mixed - expected) < 1e-4, (mixed, expected)


def test_reported_loss_survives_espnet_in_place_scaling(tmp_path):
    """ESPnet's trainer runs ``loss /= accum_grad`` before it registers the stats."""
    model, args = build(tmp_path, "train_stage2_generation.yaml")
    model.eval()
    with torch.no_grad():
        loss, stats, _ = model(**s2s_batch(args))
        reported = float(stats["loss"])
        loss /= 8
    assert float(stats["loss"]) == reported == pytest.approx(float(loss) * 8, rel=1e-6)
