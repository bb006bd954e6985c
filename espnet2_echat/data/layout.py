"""Id sequences of every OSUM-EChat output type (docs/tasks.md#layouts, docs/model.md#loss).

Ids are unified: text ids ``< V`` go through the LLM's embedding, speech-table ids are
``V + k`` and go through the speech embedding, and ``AUDIO_PLACEHOLDER`` marks where
encoded user audio is spliced in (one per audio segment, in order: the past user turns of a
multi-turn sample, then the current one). ``target`` has the same length as ``input_ids`` and
holds the id to emit at each position (``IGNORE_ID`` where unsupervised); the model shifts it.

Past turns (docs/data_pipeline.md#history, docs/decoding.md#multi-turn) are laid out by
:meth:`LayoutBuilder.history` for training and inference alike.
"""

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, List, Optional, Sequence, Tuple

from espnet2_echat.data import layout_quirks
from espnet2_echat.data.quirks import ReferenceQuirks
from espnet2_echat.data.speech_ids import SpeechIds
from espnet2_echat.data.templates import (
    ASSISTANT_START,
    AUDIO_PLACEHOLDER,
    IGNORE_ID,
    IM_END,
    OUTPUT_TYPE_PROMPT,
    SPEECH_OUTPUT_TYPES,
    TEXT_INPUT_OUTPUT_TYPES,
    TURN_END,
    USER_START,
    system_block,
)


@dataclass
class Turn:
    """One past exchange of a multi-turn chat.

    ``user_audio`` is the user's audio, opaque to the layout: the encoded audio (n, H) at
    inference (the Python API keeps the adapter output to avoid re-encoding), the wav path in
    training data. A turn without it uses ``user_text`` instead. ``reply_ids`` are the
    assistant's text ids without ``<|im_end|>``; ``speech_tokens`` its reply speech tokens
    (without markers).
    """

    reply_ids: List[int]
    speech_tokens: List[int] = field(default_factory=list)
    user_audio: Optional[Any] = None
    user_text: Optional[str] = None


@lru_cache(maxsize=4)
def load_tokenizer(path: str, add_tag_tokens: bool = False):
    """The HF fast tokenizer of the LLM (Qwen2.5's is vendored in conf/tokenizer/qwen2.5).

    ``add_tag_tokens``: with OSUM-EChat's tags added as tokens (``data.tag_tokens``; the
    config key of the same name).
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if add_tag_tokens:
        from espnet2_echat.data.tag_tokens import add_tag_tokens as add_tags

        add_tags(tokenizer)
    return tokenizer


def text_vocab_rows(config_vocab_size: int, tokenizer) -> int:
    """V, the text ids of the joint space: the LLM's embedding rows, grown to the
    tokenizer's length when added tokens pass them (Qwen2.5 has 271 spare rows)."""
    return max(int(config_vocab_size), len(tokenizer))


def im_end_id(tokenizer) -> int:
    """The id of ``<|im_end|>`` in ``tokenizer`` (151645 in Qwen2.5, 2 in SmolLM2): the end of
    every turn and of the text phase of a reply."""
    ids = tokenizer.encode(IM_END, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', tokenizer)!r} has no single "
            f"{IM_END} token (encodes as {ids}); the chat layout needs a ChatML tokenizer"
        )
    return ids[0]


def unknown_ids(tokenizer) -> List[int]:
    """Ids of the "&&" inside the unknown tag ``<&&>`` (Qwen2.5: [7672]; SmolLM2: [22]),
    never supervised (docs/model.md#loss): the tag's ids minus those of ``<`` and ``>``."""
    brackets = set(tokenizer.encode("<", add_special_tokens=False))
    brackets |= set(tokenizer.encode(">", add_special_tokens=False))
    return sorted(set(tokenizer.encode("<&&>", add_special_tokens=False)) - brackets)


class LayoutBuilder:
    """Builds prompts (inference) and (input_ids, target) pairs (training).

    The special text ids (``<|im_end|>``, the unsupervised "&&") come from the tokenizer,
    so any ChatML tokenizer works (Qwen2.5's, SmolLM2's).

    Args:
        tokenizer: a HF tokenizer or a path to one.
        speech_ids: the id scheme (K speech tokens, V text ids) of the model it feeds;
            default: the released model's (K = 4096, V = 151936).
        quirks: the reference behaviours to reproduce (``data.quirks``): the typo'd
            understanding system prompt and the missing user start of S2T-think at
            inference, and the reference's multi-turn layout.
        reference_compat: the old switch, the ``reference_compat`` preset of ``quirks``
            (used when ``quirks`` is not given).
    """

    def __init__(
        self,
        tokenizer,
        speech_ids: Optional[SpeechIds] = None,
        reference_compat: bool = False,
        quirks: Optional[ReferenceQuirks] = None,
    ):
        if speech_ids is not None and not isinstance(speech_ids, SpeechIds):
            raise TypeError(
                f"LayoutBuilder takes a SpeechIds (espnet2_echat.data.speech_ids), not "
                f"{type(speech_ids).__name__}; build one with SpeechIds.from_config("
                "speech_token_num, text_vocab_size)"
            )
        self.tokenizer = load_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
        self.im_end_id = im_end_id(self.tokenizer)
        self.unknown_ids = frozenset(unknown_ids(self.tokenizer))
        self.ids = speech_ids or SpeechIds()
        self.quirks = ReferenceQuirks.coerce(quirks, reference_compat)

    # -- pieces -----------------------------------------------------------------------
    def text(self, text: str) -> List[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def speech(self, ids: Sequence[int]) -> List[int]:
        """Speech-table ids as joint ids."""
        return self.ids.joint_ids(ids)

    @property
    def speech_marker(self) -> int:
        """Begin/end-of-speech marker (4096), as a joint id."""
        return self.ids.joint_marker

    def audio_block(self) -> List[int]:
        """Audio-input begin marker, the audio placeholder, audio-input end marker."""
        begin, end = self.speech([self.ids.audio_bos, self.ids.audio_eos])
        return [begin, AUDIO_PLACEHOLDER, end]

    def system(self, output_type: str, inference: bool = False) -> List[int]:
        """P1: system prompt of the output type plus the user start."""
        name = OUTPUT_TYPE_PROMPT.get(output_type, "fallback")
        name, with_user_start = layout_quirks.system_variant(
            name, output_type, inference, self.quirks
        )
        return self.text(system_block(name, with_user_start))

    def turn_parts(
        self, turn: Turn, audio_markers: bool = False
    ) -> Tuple[List[int], List[Any], List[int]]:
        """A past turn's user ids (an ``AUDIO_PLACEHOLDER``, wrapped in the audio markers
        when asked, or its ``user_text`` ids), its audio (0 or 1 item) and its speech ids
        (``marker speech... marker``, empty without speech tokens)."""
        if turn.user_audio is not None:
            user = self.audio_block() if audio_markers else [AUDIO_PLACEHOLDER]
            audio = [turn.user_audio]
        elif turn.user_text:
            user, audio = self.text(turn.user_text), []
        else:
            raise ValueError("a history turn has neither user audio nor user text")
        speech: List[int] = []
        if turn.speech_tokens:
            marker = self.speech_marker
            speech = [marker] + self.speech(turn.speech_tokens) + [marker]
        return user, audio, speech

    def history(self, turns: Sequence[Turn]) -> Tuple[List[int], List[Any]]:
        """Ids of past turns (an ``AUDIO_PLACEHOLDER`` per audio turn) and their audio, in order.

        Default (the training layout of ``speech2text_token_history``,
        docs/data_pipeline.md#history; it follows ``P1``, which ends with the user start), per
        turn::

            <user audio> <|im_end|>\\n <|im_end|>\\n<|im_start|>assistant\\n <reply ids>
            [marker speech... marker] <|im_end|>\\n <|im_start|>user\\n

        ``multiturn_reference_layout`` gives the reference's inference layout instead
        (``data/layout_quirks.py::history``). A turn without audio has its ``user_text`` ids
        where the audio would be.
        """
        if self.quirks.multiturn_reference_layout:
            return layout_quirks.history(self, turns)
        ids: List[int] = []
        audios: List[Any] = []
        for turn in turns:
            user, audio, speech = self.turn_parts(turn)
            audios += audio
            ids += user + self.text(TURN_END + ASSISTANT_START) + list(turn.reply_ids)
            ids += speech + self.text(TURN_END + USER_START)
        return ids, audios

    def history_prompt(
        self, output_type: str, turns: Sequence[Turn]
    ) -> Tuple[List[int], List[Any]]:
        """Prompt ids of an audio turn after ``turns`` and the past turns' audio in order.

        The current turn's audio block comes last; its audio is not in the returned list.
        This is the training prompt of the same conversation, ``P1 · history · audio block ·
        P2`` (``multiturn_reference_layout``: ``data/layout_quirks.py::history_prompt``).
        """
        if self.quirks.multiturn_reference_layout:
            return layout_quirks.history_prompt(self, output_type, turns)
        prompt_name = OUTPUT_TYPE_PROMPT.get(output_type, "fallback")
        ids = self.text(system_block(prompt_name, with_user_start=True))
        hist, audios = self.history(turns)
        ids += hist + self.audio_block() + self.text(ASSISTANT_START)
        return ids, audios

    # -- whole sequences --------------------------------------------------------------
    def prompt(
        self,
        output_type: str,
        instruction: Optional[str] = None,
        text_input: Optional[str] = None,
        inference: bool = True,
    ) -> List[int]:
        """Everything before the assistant's answer: P1 · [instruction] · user input · P2.

        ``instruction`` is used for understanding tasks (output_type ``text``) only; text-input
        tasks (T2T, TTS) take ``text_input`` instead of audio. At inference TTS ends with the
        speech marker fed as input, as the reference's generate_tts does.
        """
        ids = self.system(output_type, inference)
        if output_type == "text" and instruction:
            ids += self.text(instruction)
        if output_type in TEXT_INPUT_OUTPUT_TYPES:
            if text_input is None:
                raise ValueError(f"output type {output_type} needs a text input")
            ids += self.text(text_input)
        else:
            ids += self.audio_block()
        ids += self.text(ASSISTANT_START)
        if inference and output_type.startswith("text2token"):
            ids.append(self.speech_marker)
        return ids

    def label(self, text: str) -> List[int]:
        """Text target: tokens + ``<|im_end|>`` (omitted when the text ends with ``<&&>``)."""
        ids = self.text(text)
        return ids if text.endswith("<&&>") else ids + [self.im_end_id]

    def training_example(
        self,
        output_type: str,
        label_text: Optional[str] = None,
        speech_tokens: Optional[Sequence[int]] = None,
        instruction: Optional[str] = None,
        text_input: Optional[str] = None,
    ) -> Tuple[List[int], List[int]]:
        """(input_ids, target) of one training sample.

        The "&&" id (7672 in Qwen2.5, from ``<&&>``) in a text label is never supervised and
        enters the input as id 0 (docs/model.md#loss). TTS supervises speech only; its text is
        the user input.
        """
        prompt = self.prompt(output_type, instruction, text_input, inference=False)
        answer_in: List[int] = []
        answer_out: List[int] = []
        if output_type not in ("text2token", "text2token_streaming"):
            if label_text is None:
                raise ValueError(f"output type {output_type} needs a text label")
            label = self.label(label_text)
            unknown = self.unknown_ids
            answer_in += [0 if i in unknown else i for i in label]
            answer_out += [IGNORE_ID if i in unknown else i for i in label]
        if output_type in SPEECH_OUTPUT_TYPES:
            if not speech_tokens:
                raise ValueError(f"output type {output_type} needs speech tokens")
            marker = self.speech_marker
            spt = [marker] + self.speech(speech_tokens) + [marker]
            answer_in += spt
            answer_out += spt
        return prompt + answer_in, [IGNORE_ID] * len(prompt) + answer_out
