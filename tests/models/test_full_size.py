"""The full-size config (Whisper-medium + Qwen2.5-3B geometry) builds on the meta device with
the parameter count of docs/checkpoints.md#parameter-count, and the released checkpoint's key
layout maps one to one."""

import argparse
import re
from pathlib import Path

import pytest
import torch
import yaml

from espnet2_echat.convert.key_mapping import OSUM_ECHAT_RULES, OSUM_ECHAT_SKIPS, rename, skip_reason
from espnet2_echat.tasks.echat import EChatTask

REPO = Path(__file__).resolve().parents[2]

# Spec 1.8, in millions of parameters (Qwen counted once: embeddings are tied).
SPEC_PARAMS_M = {
    "encoder": 305.68,
    "adapter": 9.44 + 38.85 + 2.10,
    "llm.speech_embedding": 8.39,
    "llm.speech_head": 8.39,
    "llm.causal_lm": 3085.94,
}


def _build_full(tmp_path=None):
    with open(REPO / "conf/model/full.yaml", encoding="utf-8") as f:
        conf = yaml.safe_load(f)
    conf["llm_conf"]["name_or_path"] = str(REPO / conf["llm_conf"]["name_or_path"])
    args = argparse.Namespace(
        frontend_conf={}, speech_adapter_conf=conf.get("speech_adapter_conf", {}),
        trainable_parts="all", use_lora=False, gradient_checkpointing=False, **{
            k: v for k, v in conf.items() if k not in ("speech_adapter_conf",)
        }
    )
    with torch.device("meta"):
        return EChatTask.build_model(args)


@pytest.fixture(scope="module")
def full_model():
    return _build_full()


def test_parameter_count(full_model):
    counted = {}
    for name, p in full_model.named_parameters():  # named_parameters de-duplicates tied weights
        part = next(k for k in SPEC_PARAMS_M if name.startswith(k + "."))
        counted[part] = counted.get(part, 0) + p.numel()
    for part, millions in SPEC_PARAMS_M.items():
        assert abs(counted[part] / 1e6 - millions) < 0.01 * millions + 0.01, part
    total = sum(p.numel() for p in full_model.parameters())
    assert abs(total / 1e9 - 3.459) < 0.002


def released_keys():
    """The released key layout (docs/checkpoints.md#released-checkpoint) grown from the tiny
    fixture's keys.

    Layer indices are expanded to the full depth (24 encoder blocks, 36 Qwen layers); every
    other name is the same at any size.
    """
    keys = set()
    tiny = yaml.safe_load((Path(__file__).parent / "released_key_patterns.yaml").read_text())
    for pattern in tiny:
        m = re.search(r"\{(\d+)\}", pattern)
        if m:
            keys.update(pattern.replace(m.group(0), str(i)) for i in range(int(m.group(1))))
        else:
            keys.add(pattern)
    return keys


def test_released_layout_maps_one_to_one(full_model):
    ours = set(full_model.state_dict())
    mapped = {}
    for key in released_keys():
        if skip_reason(key, OSUM_ECHAT_SKIPS):
            continue
        new = rename(key, OSUM_ECHAT_RULES)
        assert new is not None, key
        assert new not in mapped, f"{key} and {mapped.get(new)} map to {new}"
        mapped[new] = key
    assert set(mapped) == ours
