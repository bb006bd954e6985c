"""Every stage config parses with EChatTask's parser; the DeepSpeed configs are valid.

The DeepSpeed jsons are checked here with DeepSpeed's own config parser; ``test_deepspeed.py``
trains with them (CPU here, one GPU under the ``gpu`` marker).
"""

import json
from pathlib import Path

import pytest
import yaml

from espnet2_echat.tasks.echat import EChatTask

REPO = Path(__file__).resolve().parents[2]
STAGE_CONFIGS = sorted(REPO.glob("conf/train_*.yaml")) + sorted(
    REPO.glob("conf/full/train_*.yaml")
) + sorted(REPO.glob("conf/small_real/train_*.yaml"))
EXPECTED_PARTS = {
    # the tiny stage 1 trains its random LLM too (see the config); full size freezes it
    "full/train_stage1_understanding": "link_and_encoder",
    "train_stage1_understanding": "all",
    "train_stage2_generation": "all",
    "train_stage3_empathy_tag": "all",
    "train_stage3_empathy_language": "all",
    "train_lora_24gb": "link_and_lora",
    # real pretrained encoder and LLM, frozen in every stage (conf/model/small_real.yaml)
    "small_real/train_stage1_understanding": "link",
    "small_real/train_stage2_generation": "link",
    "small_real/train_stage3_empathy_tag": "link",
    "small_real/train_stage3_empathy_language": "link",
}


@pytest.mark.parametrize("config", STAGE_CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_stage_config_parses(config, tmp_path):
    args = EChatTask.get_parser().parse_args(
        ["--config", str(config), "--output_dir", str(tmp_path)]
    )
    key = config.stem if config.parent.name == "conf" else f"{config.parent.name}/{config.stem}"
    assert args.trainable_parts == EXPECTED_PARTS.get(key, EXPECTED_PARTS[config.stem])
    assert args.require_init_param == (not config.stem.startswith("train_stage1"))
    assert args.preprocessor_conf["prompt_config"] == "conf/prompt_config.yaml"
    if "stage3" in config.stem:
        assert args.preprocessor_conf["think_mode"] == config.stem.rsplit("_", 1)[1]
    # full size: the reference's optimiser and schedule (docs/training.md#optimiser)
    if config.parent.name == "full":
        assert args.optim == "adamw" and args.scheduler == "warmuplr"
        assert args.scheduler_conf == {"warmup_steps": 2000}
        assert (args.accum_grad, args.grad_clip) == (8, 5.0)
        assert args.batch_tokens == (2000 if "lora" in config.stem else 3700)
        assert args.speech_token_num == 4097 and args.encoder_conf["num_blocks"] == 24
    if config.parent.name == "small_real":  # the model keys of conf/model/small_real.yaml
        model = yaml.safe_load((REPO / "conf/model/small_real.yaml").read_text())
        for name, value in model.items():
            if name != "frontend":  # training configs add SpecAugment
                assert getattr(args, name) == value, name


@pytest.mark.parametrize("name, stage", [("ds_zero2.json", 2), ("ds_zero3_offload.json", 3)])
def test_deepspeed_config_is_valid(name, stage):
    from deepspeed.runtime.config import DeepSpeedConfig

    config = DeepSpeedConfig(json.loads((REPO / "conf" / "full" / name).read_text()))
    assert config.zero_optimization_stage == stage
    assert config.bfloat16_config.enabled
    assert config.gradient_accumulation_steps == 8 and config.gradient_clipping == 5.0
    assert config.optimizer_name == "adamw" and config.optimizer_params["lr"] == 1e-6
    # torch's AdamW: no DeepSpeed op (FusedAdam / CPUAdam) to JIT-compile, on GPU or CPU
    assert config.optimizer_params["torch_adam"] is True
    if stage == 3:
        assert config.zero_config.offload_optimizer.device == "cpu"
        assert config.zero_config.offload_param.device == "cpu"


# Keys a training config may set differently from its size's model block, and why:
# the training frontend is the model's one with SpecAugment/SpecSub (``*_specaug``); the
# LLM may be named by hub id or local copy, loaded pretrained, and trained in float32.
LLM_LOAD_KEYS = ("name_or_path", "pretrained", "dtype")


@pytest.mark.parametrize("config", STAGE_CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_training_config_has_its_size_model_block(config):
    """Every training yaml repeats conf/model/<size>.yaml: nothing may drift."""
    import yaml

    size = "tiny" if config.parent.name == "conf" else config.parent.name
    model = yaml.safe_load((REPO / "conf" / "model" / f"{size}.yaml").read_text())
    train = yaml.safe_load(config.read_text())
    for key, value in model.items():
        if key == "frontend":
            assert train[key] in (value, f"{value}_specaug"), key
        elif key == "llm_conf":
            strip = lambda c: {k: v for k, v in c.items() if k not in LLM_LOAD_KEYS}  # noqa: E731
            assert strip(train[key]) == strip(value), key
        else:
            assert train.get(key) == value, f"{config.name}: {key} differs from model/{size}.yaml"
