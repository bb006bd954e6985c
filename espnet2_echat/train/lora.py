"""Fold peft LoRA adapters into the LLM's base weights, for packing a fine-tuned model."""

from __future__ import annotations

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
