"""Chat template and system prompts of OSUM-EChat (task tags: ``data.task_registry``;
docs/tasks.md#layouts, docs/tasks.md#system-prompts).

Everything here is data: exact strings and ids of the reference. The preprocessor turns
them into id sequences; the model never reads this module.
"""

from typing import Dict

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"

# Special text ids of the Qwen2.5 tokenizer.
ENDOFTEXT_ID = 151643
IM_START_ID = 151644
IM_END_ID = 151645
# "&&", the middle of the unknown tag "<&&>" = [27, 7672, 29]: never supervised
# (docs/model.md#loss).
UNKNOWN_ID = 7672
IGNORE_ID = -100
# Where the encoded user audio is spliced into a sequence of unified ids.
AUDIO_PLACEHOLDER = -1

SYSTEM_PROMPTS: Dict[str, str] = {
    "s2s": (
        "You are OSUM-chat, a speech-to-speech dialogue assistant by ASLP Lab. You understand "
        "both the meaning and paralinguistic cues in speech then respond with appropriate text "
        "and emotionally matching synthetic speech."
    ),
    "s2s_think": (
        "You are OSUM-chat, a speech-to-speech dialogue assistant by ASLP Lab. You understand "
        "both the meaning and paralinguistic cues in speech. Before responding, first output "
        "your reasoning inside <think>...</think end>, analyzing the user\u2019s words and vocal "
        "cues. Then generate a reply with appropriate text and emotionally matched synthetic "
        "speech."
    ),
    "s2s_streaming": (
        "You are OSUM-chat, a speech-to-speech dialogue assistant by ASLP Lab. You analyze "
        "speech (content + paralinguistic cues) and respond with interleaved text and "
        "emotionally-matched synthetic speech."
    ),
    "s2t": (
        "You are OSUM-chat, a speech-to-text dialogue assistant by ASLP Lab. You understand "
        "both the meaning and paralinguistic cues in speech then respond exclusively with "
        "appropriate text."
    ),
    "s2t_thinking": (
        "You are OSUM-chat, a thinking-enabled speech-to-text dialogue assistant by ASLP Lab. "
        "You not only comprehend the semantic meaning and paralinguistic cues in speech but "
        "also engage in deliberate reasoning to process such information. Based on this "
        "thinking process, you then respond exclusively with appropriate text."
    ),
    "t2t": (
        "You are OSUM-chat, a text-to-text dialogue assistant by ASLP Lab. You understand user "
        "input in text then respond exclusively with appropriate text."
    ),
    "understand": (
        "You are OSUM-chat, an audio understanding assistant by ASLP Lab. You can transcribe "
        "speech accurately and analyze paralinguistic cues to provide precise text responses."
    ),
    # The reference's generate() uses this typo'd variant at inference
    # (docs/tasks.md#system-prompts, docs/differences.md); kept only for reference_compat
    # decoding.
    "understand_infer_compat": (
        "You are OSUM-chat, an audio understanding. You can transcribe speech accurately and "
        "anaosum_echat2e paralinguistic cues to provide precise text responses."
    ),
    "tts": (
        "You are OSUM-chat, a speech synthesis assistant by ASLP Lab. You generate natural and "
        "fluent speech from text input."
    ),
    "tts_streaming": (
        "You are OSUM-chat, a speech synthesis assistant by ASLP Lab. You generate natural "
        "speech from text input and output both audio and the original text in interleaved "
        "format."
    ),
    "fallback": "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
}

# output_type -> system prompt name (docs/tasks.md#layouts, docs/tasks.md#system-prompts).
OUTPUT_TYPE_PROMPT: Dict[str, str] = {
    "text": "understand",
    "s2t_chat": "s2t",
    "s2t_chat_think": "s2t_thinking",
    "s2t_chat_fake": "s2s_think",
    "text2text": "t2t",
    "text2token": "tts",
    "text2token_streaming": "tts_streaming",
    "speech2text_token": "s2s",
    "speech2text_token_history": "s2s",
    "speech2text_token_think": "s2s_think",
    "speech2text_token_streaming": "s2s_streaming",
}

# Output types whose target ends with speech tokens (concatenated text+speech softmax).
SPEECH_OUTPUT_TYPES = frozenset(
    t for t in OUTPUT_TYPE_PROMPT if t.startswith(("text2token", "speech2text_token"))
)
# Output types whose user turn is text, not audio.
TEXT_INPUT_OUTPUT_TYPES = frozenset({"text2text", "text2token", "text2token_streaming"})

def system_block(prompt_name: str, with_user_start: bool = True) -> str:
    """``<|im_start|>system\\n{prompt}<|im_end|>\\n`` optionally followed by the user start (P1)."""
    text = f"{IM_START}system\n{SYSTEM_PROMPTS[prompt_name]}{IM_END}\n"
    return text + (f"{IM_START}user\n" if with_user_start else "")


ASSISTANT_START = f"{IM_END}\n{IM_START}assistant\n"  # P2 = [151645, 198, 151644, 77091, 198]
USER_START = f"{IM_START}user\n"
TURN_END = f"{IM_END}\n"
