"""Which parts train (the reference's ``fire_module``, docs/training.md#stages) and LoRA through peft."""

from typing import Dict, Sequence

from torch import nn

# Prefixes of EChatModel parameters that train, per reference fire_module value.
# "link" = adapter + speech embedding/head + the rows of added tags (models/text_row_deltas.py);
# the LLM body is ``llm.causal_lm``.
_LINK = ("adapter.", "llm.speech_embedding.", "llm.speech_head.", "llm.text_row_deltas.")
TRAINABLE_PARTS: Dict[str, Sequence[str]] = {
    "link": _LINK,
    "encoder": ("encoder.",),
    "llm": ("llm.causal_lm.",),
    "link_and_encoder": _LINK + ("encoder.",),
    "link_and_lora": _LINK + ("llm.causal_lm.",),
    "link_and_encoder_and_lora": _LINK + ("encoder.", "llm.causal_lm."),
    "all": ("",),
}

# The reference's LoRA target modules (docs/model.md#llm-and-lora; note: no up_proj).
REFERENCE_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj"]


def set_trainable_parts(model: nn.Module, parts: str) -> None:
    """Freeze every parameter outside ``parts``; LoRA weights (if any) follow their LLM."""
    if parts not in TRAINABLE_PARTS:
        raise ValueError(f"trainable_parts must be one of {sorted(TRAINABLE_PARTS)}, got {parts!r}")
    # the auxiliary label heads (models.label_heads) exist only to train: always on
    prefixes = tuple(TRAINABLE_PARTS[parts]) + ("label_heads.",)
    for name, param in model.named_parameters():
        param.requires_grad = name.startswith(prefixes)


def add_lora(causal_lm: nn.Module, r: int = 64, alpha: int = 32, dropout: float = 0.1,
             target_modules: Sequence[str] = tuple(REFERENCE_LORA_TARGETS)) -> nn.Module:
    """Inject peft LoRA layers into the LLM in place and freeze its base weights."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules)
    )
    causal_lm = inject_adapter_in_model(config, causal_lm)
    for name, param in causal_lm.named_parameters():
        param.requires_grad = "lora_" in name
    return causal_lm
