"""Model sizes of ../shared/spec/performance_anchors.md, built from config with random weights."""

import argparse
import tempfile
from pathlib import Path

import torch
from transformers import LlamaConfig

from espnet2_echat.tasks.echat import EChatTask

REPO = Path(__file__).resolve().parents[1]

SIZES = {
    # 6.7 M params: the reference's tiny golden geometry.
    "tiny": dict(
        encoder_conf=dict(output_size=64, attention_heads=4, linear_units=256, num_blocks=2),
        speech_adapter_conf={},
        llm_overrides=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2),
    ),
    # 125.7 M params (LLM part 101.9 M).
    "small": dict(
        encoder_conf=dict(output_size=384, attention_heads=6, linear_units=1536, num_blocks=4),
        speech_adapter_conf={},
        llm_overrides=dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=8,
                           num_attention_heads=8, num_key_value_heads=2),
    ),
    # "small" as a Llama-family LLM (SmolLM2's architecture: no q/k/v bias, GQA), untied
    # embeddings: the same geometry, so its speed compares with "small" directly.
    "small_llama": dict(
        encoder_conf=dict(output_size=384, attention_heads=6, linear_units=1536, num_blocks=4),
        speech_adapter_conf={},
        llm_family="llama",
        llm_overrides=dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=8,
                           num_attention_heads=8, num_key_value_heads=2, vocab_size=151936,
                           tie_word_embeddings=False),
    ),
}


def _llm_dir(spec: dict) -> str:
    """The config directory the size's LLM is built from (a Llama one is written once)."""
    if spec.get("llm_family") != "llama":
        return str(REPO / "conf/llm/qwen2.5-3b")
    folder = Path(tempfile.gettempdir()) / "echat_bench_llama"
    LlamaConfig(**spec["llm_overrides"]).save_pretrained(folder)
    return str(folder)


def build(size: str, dtype: str = "float32", seed: int = 0):
    """An eval-mode EChatModel of the named size (speech_token_num 4097 as released)."""
    spec = SIZES[size]
    torch.manual_seed(seed)
    args = argparse.Namespace(
        frontend="whisper_logmel", frontend_conf={},
        encoder="whisper", encoder_conf=dict(spec["encoder_conf"], dropout_rate=0.0),
        speech_adapter="osum_echat", speech_adapter_conf=spec["speech_adapter_conf"],
        llm="hf_causal_lm",
        llm_conf=dict(name_or_path=_llm_dir(spec), dtype=dtype,
                      config_overrides=spec["llm_overrides"]),
        speech_token_num=4097, trainable_parts="all", use_lora=False,
        gradient_checkpointing=False,
    )
    return EChatTask.build_model(args).eval()
