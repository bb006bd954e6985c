"""Checkpoint key layouts -> this package's module names.

Whisper encoders come in three namings (OpenAI ``.pt``, HF ``WhisperModel``, WeNet as the
OSUM-EChat checkpoint stores them); all map onto ``WhisperStyleEncoder``, whose names are
HF's. Each rule is a regex with a replacement; the first match wins.
"""

import re
from typing import Dict, List, Optional, Sequence, Tuple

Rule = Tuple[str, str]

# Within the encoder, relative to its prefix.
WENET_WHISPER_RULES: List[Rule] = [
    (r"embed\.conv\.0\.", "conv1."),
    (r"embed\.conv\.2\.", "conv2."),
    (r"encoders\.(\d+)\.self_attn\.linear_q\.", r"layers.\1.self_attn.q_proj."),
    (r"encoders\.(\d+)\.self_attn\.linear_k\.", r"layers.\1.self_attn.k_proj."),
    (r"encoders\.(\d+)\.self_attn\.linear_v\.", r"layers.\1.self_attn.v_proj."),
    (r"encoders\.(\d+)\.self_attn\.linear_out\.", r"layers.\1.self_attn.out_proj."),
    (r"encoders\.(\d+)\.feed_forward\.w_1\.", r"layers.\1.fc1."),
    (r"encoders\.(\d+)\.feed_forward\.w_2\.", r"layers.\1.fc2."),
    (r"encoders\.(\d+)\.norm1\.", r"layers.\1.self_attn_layer_norm."),
    (r"encoders\.(\d+)\.norm2\.", r"layers.\1.final_layer_norm."),
    (r"after_norm\.", "layer_norm."),
]

OPENAI_WHISPER_RULES: List[Rule] = [
    (r"conv([12])\.", r"conv\1."),
    (r"blocks\.(\d+)\.attn\.query\.", r"layers.\1.self_attn.q_proj."),
    (r"blocks\.(\d+)\.attn\.key\.", r"layers.\1.self_attn.k_proj."),
    (r"blocks\.(\d+)\.attn\.value\.", r"layers.\1.self_attn.v_proj."),
    (r"blocks\.(\d+)\.attn\.out\.", r"layers.\1.self_attn.out_proj."),
    (r"blocks\.(\d+)\.mlp\.0\.", r"layers.\1.fc1."),
    (r"blocks\.(\d+)\.mlp\.2\.", r"layers.\1.fc2."),
    (r"blocks\.(\d+)\.attn_ln\.", r"layers.\1.self_attn_layer_norm."),
    (r"blocks\.(\d+)\.mlp_ln\.", r"layers.\1.final_layer_norm."),
    (r"ln_post\.", "layer_norm."),
]

HF_WHISPER_RULES: List[Rule] = [(r"(conv[12]|layers|layer_norm)\.", r"\1.")]

# Whisper's positional table in the three namings: checked to be the sinusoid (up to
# rounding) and loaded as ``positions`` (espnet2_echat.convert.whisper).
WHISPER_POSITION_KEYS = ("embed.pos_enc.pe", "positional_embedding", "embed_positions.weight")

# The OSUM-EChat checkpoint's positional tables and their sinusoid layouts: checked, then
# loaded (the model computes with the stored tables, as the reference does).
OSUM_ECHAT_POSITION_TABLES: Dict[str, str] = {
    "encoder.embed.pos_enc.pe": "whisper",
    "speech_transformer.embed.pos_enc.pe": "interleaved",
}

# The OSUM-EChat checkpoint (docs/checkpoints.md#released-checkpoint), relative to the whole model.
OSUM_ECHAT_RULES: List[Rule] = [
    (r"encoder\.embed\.pos_enc\.pe$", "encoder.positions"),
    (r"speech_transformer\.embed\.pos_enc\.pe$", "adapter.transformer.pos_enc.pe"),
    *[(r"encoder\." + src, "encoder." + dst) for src, dst in WENET_WHISPER_RULES],
    (r"down_sample_2\.conv\.", "adapter.downsampler.conv."),
    (r"speech_transformer\.embed\.out\.", "adapter.transformer.embed."),
    (r"speech_transformer\.encoders\.", "adapter.transformer.encoders."),
    (r"speech_transformer\.after_norm\.", "adapter.transformer.after_norm."),
    (r"speech_llama_proj\.", "adapter.proj."),
    (r"llama_model\.", "llm.causal_lm."),
    (r"speech_token_emded\.", "llm.speech_embedding."),
    (r"speech_head\.", "llm.speech_head."),
]

# Source keys that are deliberately not loaded, with the reason.
OSUM_ECHAT_SKIPS: Dict[str, str] = {
    r"ln_speech\.(weight|bias)": "LayerNorm defined but never used in the reference forward",
    r"embed_tokens\.weight": "alias of llama_model.model.embed_tokens (checked identical)",
    r"lm_head\.weight": "alias of llama_model.lm_head (checked identical)",
}


def rename(key: str, rules: Sequence[Rule], prefix: str = "") -> Optional[str]:
    """Apply the first rule that matches at the start of ``key``; None if none does."""
    for pattern, repl in rules:
        match = re.match(pattern, key)
        if match:
            return prefix + match.expand(repl) + key[match.end() :]
    return None


def skip_reason(key: str, skips: Dict[str, str]) -> Optional[str]:
    for pattern, reason in skips.items():
        if re.fullmatch(pattern, key):
            return reason
    return None
