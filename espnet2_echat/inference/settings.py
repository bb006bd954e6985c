"""Default decoding settings of each task (the tasks themselves: ``data.task_registry``).

Every default is the reference's value for the function it calls for that task and can be
overridden per call. The reference samples everywhere but T2T; pass ``do_sample=False``
for greedy decoding.
"""

from dataclasses import dataclass, fields, replace
from typing import Dict, Mapping, Optional

from espnet2_echat.data.task_registry import UNDERSTANDING_TASKS, check_task

# Default instruction of each understanding task: the first Chinese entry of the
# reference's prompt_config.yaml for the tag (docs/labels.md#instructions); ASR uses the
# instruction of the reference's batch/runtime inference (infer_runtime.py,
# infer_with_shards_or_raw.py). Gender and age entries of the reference are not known; these
# follow the same pattern.
DEFAULT_INSTRUCTIONS: Dict[str, str] = {
    "asr": "将这段音频的语音内容详细记录为文字稿。",
    "emotion": "请辨认以下音频中发言者的情感，并用<>括住情感标签。",
    "gender": "请辨认以下音频中发言者的性别，并用<>括住性别标签。",
    "age": "请辨认以下音频中发言者的年龄，并用<>括住年龄标签。",
    "event": "分辨音频中的事件，直接返回标签，格式为<>。",
}


@dataclass(frozen=True)
class DecodingOptions:
    """Sampling and stopping settings of one decode.

    Attributes:
        do_sample: sample (True) or take the argmax (ties: lowest id).
        top_k, top_p, temperature, repetition_penalty: transformers' warpers / processor
            (0 / 1.0 disable them).
        max_new_tokens: budget of text-phase ids. S2S: ``<|im_end|>`` is forced when it is
            reached (fixed) or decoding stops there (reference_compat).
        max_new_speech_tokens: budget of speech-phase ids (TTS, S2S).
        min_new_tokens: the stop id is banned before this many ids (the reference's
            ``generate``-family passes ``min_length=1``).
        age_forcing: the tag-CoT age constraint after ``年龄为:<``
            (docs/decoding.md#logits-processors).
        speech_ngram_blocking: ban over-repeated speech ids (the reference's no-op blocker,
            made to work).
        seed: seed of the sampling generator (None: torch's global RNG).
    """

    do_sample: bool = True
    top_k: int = 0
    top_p: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.0
    max_new_tokens: int = 2000
    max_new_speech_tokens: int = 2000
    min_new_tokens: int = 0
    age_forcing: bool = False
    speech_ngram_blocking: bool = False
    seed: Optional[int] = None

    def updated(self, overrides: Mapping[str, object]) -> "DecodingOptions":
        """A copy with ``overrides`` applied (``None`` values are ignored)."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(
                f"unknown decoding options {unknown}; expected some of {sorted(names)}"
            )
        options = replace(self, **{k: v for k, v in overrides.items() if v is not None})
        options.check()
        return options

    def check(self) -> None:
        """Refuse values out of range (naming the option, its value and the range)."""
        rules = {
            "top_k": (self.top_k, lambda v: v >= 0, ">= 0 (0: no top-k)"),
            "top_p": (self.top_p, lambda v: 0 < v <= 1, "in (0, 1]"),
            "temperature": (self.temperature, lambda v: v > 0, "> 0"),
            "repetition_penalty": (self.repetition_penalty, lambda v: v > 0, "> 0"),
            "max_new_tokens": (self.max_new_tokens, lambda v: v >= 1, ">= 1"),
            "max_new_speech_tokens": (self.max_new_speech_tokens, lambda v: v >= 1, ">= 1"),
            "min_new_tokens": (self.min_new_tokens, lambda v: v >= 0, ">= 0"),
        }
        for name, (value, ok, expected) in rules.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise ValueError(f"decoding option {name}={value!r}: expected a number {expected}")
            if not ok(value):
                raise ValueError(f"decoding option {name}={value!r} is out of range: expected {expected}")
        if self.max_new_tokens is not None and self.min_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"decoding options: min_new_tokens={self.min_new_tokens} exceeds "
                f"max_new_tokens={self.max_new_tokens}"
            )


_UNDERSTANDING = DecodingOptions(
    top_k=5,
    top_p=0.9,
    temperature=1.0,
    repetition_penalty=1.05,
    max_new_tokens=8000,
    min_new_tokens=1,
)
_DEFAULTS: Dict[str, DecodingOptions] = {
    **{task: _UNDERSTANDING for task in UNDERSTANDING_TASKS},
    "s2t_chat": replace(_UNDERSTANDING, top_k=2, top_p=1.0, temperature=0.4),
    "t2t": DecodingOptions(do_sample=False, max_new_tokens=200, min_new_tokens=1),
    "tts": DecodingOptions(top_k=15, top_p=0.8, temperature=1.2, max_new_speech_tokens=2000),
    "s2s": DecodingOptions(
        top_k=10,
        top_p=0.9,
        temperature=1.2,
        max_new_tokens=2000,
        max_new_speech_tokens=2000,
        age_forcing=True,
        speech_ngram_blocking=True,  # the reference's is never active (decoding_quirks)
    ),
}


def default_options(task: str, think: str = "none") -> DecodingOptions:
    """The reference's settings for ``task`` (docs/decoding.md#per-task-settings).

    The speech n-gram blocker of S2S is on and the age constraint also guards S2T chat with
    tag think; ``decoding_quirks.reference_options`` turns them back into the reference's
    (the ``reference_decoding_defaults`` switch).
    """
    check_task(task, think)
    options = _DEFAULTS[task]
    if task == "s2t_chat" and think == "tag":
        options = replace(options, age_forcing=True)
    return options
