"""A LoRA fine-tune of EChatTask folded into its base weights (config + model file)."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import torch
import yaml

from espnet2_echat.tasks.echat import EChatTask
from espnet2_echat.train.lora import merge_lora


def merge_lora_model_file(
    config_file: Path, model_file: Path, out_dir: Path
) -> Tuple[Path, Path]:
    """Write ``out_dir/config.yaml`` (``use_lora: false``) and the merged ``model.pth``."""
    model, args = EChatTask.build_model_from_file(config_file, model_file)
    if not args.use_lora:
        raise ValueError(f"{config_file} has use_lora: false; nothing to merge")
    n = merge_lora(model.llm.causal_lm)
    if n == 0:
        raise RuntimeError(f"{model_file}: no LoRA layer found to merge")
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in vars(args).items() if k not in ("config_dir", "config_file")}
    config["use_lora"] = False
    out_config, out_model = out_dir / "config.yaml", out_dir / "model.pth"
    with out_config.open("w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True, sort_keys=False)
    torch.save(model.state_dict(), out_model)
    return out_config, out_model
