"""Convert a released OSUM-EChat checkpoint (docs/checkpoints.md#released-checkpoint) into this package's model files."""

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

import torch
import yaml

from espnet2_echat.convert.key_mapping import (
    OSUM_ECHAT_POSITION_TABLES,
    OSUM_ECHAT_RULES,
    OSUM_ECHAT_SKIPS,
    rename,
    skip_reason,
)
from espnet2_echat.models.sinusoids import check_sinusoid_table
from espnet2_echat.safety.atomic import replace_dir
from espnet2_echat.safety.checkpoints import weights_only_load
from espnet2_echat.tasks.strict_loading import key_problems

LLM_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
)

# encoder_conf values the converted model reproduces; anything else is a different model.
_REQUIRED_ENCODER_CONF = {
    "input_layer": "conv1d2",
    "pos_enc_layer_type": "abs_pos_whisper",
    "key_bias": False,
    "activation_type": "gelu",
    "normalize_before": True,
}


class ConversionError(ValueError):
    """The checkpoint or config cannot be converted; the message lists every problem."""


def task_args_from_osum_config(osum: Dict, llm_dir: str, dtype: str = "float32") -> Dict:
    """EChatTask model arguments equivalent to a reference ``ct_config.yaml``."""
    problems = []
    if osum.get("adapter_type", "osum_echat") != "osum_echat":
        problems.append(f"adapter_type={osum.get('adapter_type')!r} (only 'osum_echat')")
    if osum.get("input_dim", 80) != 80:
        problems.append(f"input_dim={osum.get('input_dim')} (Whisper log-mel needs 80)")
    enc = osum.get("encoder_conf")
    if not isinstance(enc, dict):
        raise ConversionError("osum config has no encoder_conf mapping")
    for key, value in _REQUIRED_ENCODER_CONF.items():
        if enc.get(key, value) != value:
            problems.append(f"encoder_conf.{key}={enc.get(key)!r} (expected {value!r})")
    if osum.get("use_lora", False):
        problems.append("use_lora=true (released EChat checkpoints have no LoRA weights)")
    if problems:
        raise ConversionError("unsupported osum config: " + "; ".join(problems))
    return dict(
        frontend="whisper_logmel",
        frontend_conf={},
        encoder="whisper",
        encoder_conf=dict(
            output_size=enc["output_size"],
            attention_heads=enc["attention_heads"],
            linear_units=enc["linear_units"],
            num_blocks=enc["num_blocks"],
            dropout_rate=enc.get("dropout_rate", 0.1),
            attention_dropout_rate=enc.get("attention_dropout_rate", 0.0),
        ),
        speech_adapter="osum_echat",
        speech_adapter_conf={},
        llm="hf_causal_lm",
        llm_conf=dict(name_or_path=llm_dir, pretrained=False, dtype=dtype),
        speech_token_num=int(osum["speech_token_num"]),
        trainable_parts="all",
        use_lora=False,
        gradient_checkpointing=False,
        use_preprocessor=True,
        tokenizer=llm_dir,
        preprocessor_conf={},
    )


def _check_derived(src: Dict[str, torch.Tensor], key: str) -> None:
    """Aliases the converter skips must equal the tensor they alias."""
    if key not in ("embed_tokens.weight", "lm_head.weight"):
        return
    value = src[key]
    expected = src[
        "llama_model.model.embed_tokens.weight"
        if key == "embed_tokens.weight"
        else "llama_model.lm_head.weight"
    ]
    if value.shape != expected.shape or not torch.equal(value, expected):
        raise ConversionError(f"{key} differs from the tensor it aliases")


def _position_table(key: str, value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A stored positional table, checked to be its sinusoid up to float32/16 or bfloat16
    rounding, in the model's shape. It is loaded as stored: the reference computes with the
    table its checkpoint holds, whatever its dtype or rounding."""
    try:
        rounding = check_sinusoid_table(value, OSUM_ECHAT_POSITION_TABLES[key], key)
    except ValueError as err:
        raise ConversionError(str(err)) from None
    logging.info(f"{key}: the sinusoid up to {rounding} rounding; the model computes with it")
    return value.reshape(target.shape) if value.numel() == target.numel() else value


def map_osum_state_dict(
    src: Dict[str, torch.Tensor], expected: Dict[str, torch.Tensor]
) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Rename every source tensor to this package's keys; returns (state, skip log lines).

    Raises ConversionError listing unknown, missing and mis-shaped tensors.
    """
    state, skipped, unknown, mis_shaped = {}, [], [], []
    for key, value in src.items():
        reason = skip_reason(key, OSUM_ECHAT_SKIPS)
        if reason:
            _check_derived(src, key)
            skipped.append(f"{key}: {reason}")
            continue
        new = rename(key, OSUM_ECHAT_RULES)
        if new is None or new not in expected:
            unknown.append(key)
            continue
        if key in OSUM_ECHAT_POSITION_TABLES:
            value = _position_table(key, value, expected[new])
        if tuple(value.shape) != tuple(expected[new].shape):
            mis_shaped.append(
                f"{key} -> {new}: checkpoint {tuple(value.shape)} vs model "
                f"{tuple(expected[new].shape)}"
            )
            continue
        state[new] = value
    tied = "llm.causal_lm.lm_head.weight"
    if tied in expected and tied not in state and "llm.causal_lm.model.embed_tokens.weight" in state:
        state[tied] = state["llm.causal_lm.model.embed_tokens.weight"]
        skipped.append("llama_model.lm_head.weight absent: tied to embed_tokens")
    missing = sorted(set(expected) - set(state))
    problems = key_problems(missing, unknown, mis_shaped, noun="tensors")
    if problems:
        raise ConversionError("checkpoint does not match the config: " + " | ".join(problems))
    return state, skipped


def load_checkpoint(path: str) -> Dict[str, torch.Tensor]:
    """A flat state dict; DeepSpeed ``{'module': ...}`` wrappers are unwrapped."""
    state = weights_only_load(path, map_location="cpu")
    if isinstance(state, dict) and "module" in state and isinstance(state["module"], dict):
        state = state["module"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{path} is not a flat {{name: tensor}} state dict")
    return state


def convert_osum_echat(
    osum_checkpoint: str, osum_config: str, llm_dir: str, out_dir: str, dtype: str = "float32"
) -> Path:
    """Write ``config.yaml`` + ``model.pth`` (+ the LLM config/tokenizer in ``llm/``).

    The checkpoint is loaded (weights only) and checked against the model before anything
    in ``out_dir`` changes: everything is built in a temporary folder beside it and moved
    in when complete, so a failed conversion leaves an earlier model in ``out_dir``
    loadable."""
    from espnet2_echat.tasks.echat import EChatTask
    from espnet2_echat.tasks.strict_loading import load_state_dict_strict

    src = load_checkpoint(osum_checkpoint)
    with open(osum_config, encoding="utf-8") as f:
        osum = yaml.safe_load(f)
    if not isinstance(osum, dict):
        raise ConversionError(f"{osum_config}: expected a yaml mapping (the OSUM config)")
    copied = [n for n in LLM_FILES if (Path(llm_dir) / n).is_file()]
    if "config.json" not in copied:
        raise ConversionError(f"{llm_dir} has no config.json (the LLM config)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".convert.", dir=out))
    try:
        (stage / "llm").mkdir()
        for name in copied:
            shutil.copy(Path(llm_dir) / name, stage / "llm" / name)
        args = task_args_from_osum_config(osum, "llm", dtype)
        if "encoder.embed.pos_enc.pe" in src:  # the encoder keeps as many rows as stored
            args["encoder_conf"]["max_positions"] = int(src["encoder.embed.pos_enc.pe"].shape[-2])
        with (stage / "config.yaml").open("w", encoding="utf-8") as f:
            yaml.safe_dump(args, f, allow_unicode=True, sort_keys=False)
        model, _ = EChatTask.build_model_from_file(stage / "config.yaml", None)
        state, skipped = map_osum_state_dict(src, model.state_dict())
        for line in skipped:
            logging.info(f"skipped {line}")
        load_state_dict_strict(model, state, osum_checkpoint)
        torch.save(model.state_dict(), stage / "model.pth")
        replace_dir(stage / "llm", out / "llm")
        os.replace(stage / "config.yaml", out / "config.yaml")
        os.replace(stage / "model.pth", out / "model.pth")
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    logging.info(f"wrote {out / 'config.yaml'} and {out / 'model.pth'} ({len(state)} tensors)")
    return out / "model.pth"
