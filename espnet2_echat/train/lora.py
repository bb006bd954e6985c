"""Fold peft LoRA adapters into the LLM's base weights, for packing a fine-tuned model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Tuple

import torch
import yaml
from torch import nn


def merge_lora(model: nn.Module) -> int:
    """Merge every LoRA layer of ``model`` into its base layer in place.

    Each peft ``LoraLayer`` becomes its base ``nn.Linear`` holding ``W + B A * scale``,
    so parameter names are those of a model built without LoRA. Returns the count merged.
    """
    from peft.tuners.lora import LoraLayer

    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer)]
    for name, module in targets:
        module.merge()
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, module.get_base_layer())
    return len(targets)


def merge_lora_model_file(
    config_file: Path, model_file: Path, out_dir: Path
) -> Tuple[Path, Path]:
    """Write ``out_dir/config.yaml`` (``use_lora: false``) and the merged ``model.pth``."""
    from espnet2_echat.tasks.echat import EChatTask

    model, args = EChatTask.build_model_from_file(config_file, model_file)
    if not args.use_lora:
        raise ValueError(f"{config_file} has use_lora: false; nothing to merge")
    n = merge_lora(model.llm.causal_lm)
    if n == 0:
        raise RuntimeError(f"{model_file}: no LoRA layer found to merge")
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in vars(args).items() if k != "config_dir"}
    config["use_lora"] = False
    out_config, out_model = out_dir / "config.yaml", out_dir / "model.pth"
    with out_config.open("w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True, sort_keys=False)
    torch.save(model.state_dict(), out_model)
    return out_config, out_model


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Merge LoRA adapters into the base LLM")
    parser.add_argument("--config", type=Path, required=True, help="training config.yaml")
    parser.add_argument("--model_file", type=Path, required=True, help="e.g. valid.loss.ave.pth")
    parser.add_argument("--out_dir", type=Path, required=True)
    return parser
