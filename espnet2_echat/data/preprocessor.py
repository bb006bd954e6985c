"""Turn one data-dir sample into the ``input_ids`` / ``target`` arrays of EChatModel.

The sample is a dict of a data dir (docs/data_dir.md): ``task`` plus whichever of
``speech text question reply think speech_token history utt2gender utt2age utt2emotion
utt2event utt2style reply_emotion`` the utterance has. The reference does this in its
``processor.py::tokenize`` (docs/tasks.md#layouts, docs/data_pipeline.md#augmentation); this
module keeps its task logic and strings and builds the id layouts with
:class:`espnet2_echat.data.layout.LayoutBuilder`.

Random choices (prompt per sample, X-only conversion, ``<&&>`` fill, streaming
conversion) use numpy's global RNG, which ESPnet's trainer seeds at every epoch and its
DataLoader workers seed per worker: a resumed run draws the same values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import soundfile
import yaml

from espnet2_echat.data.cot import (
    UNKNOWN_FILL_PROB,
    build_language_think,
    build_tag_think_target,
    wrap_think,
)
from espnet2_echat.data.labels import (
    ensure_reply_emotion,
    normalize_label,
    normalize_text,
    split_leading_tag,
)
from espnet2_echat.data.label_ids import label_indices
from espnet2_echat.data.layout import LayoutBuilder, Turn
from espnet2_echat.data import layout_quirks
from espnet2_echat.data.quirks import switch
from espnet2_echat.data.speech_ids import SpeechIds
from espnet2_echat.data.templates import (
    AUDIO_PLACEHOLDER,
    IGNORE_ID,
    IM_END_ID,
    SPEECH_OUTPUT_TYPES,
    TEXT_INPUT_OUTPUT_TYPES,
    TURN_END,
    USER_START,
    ASSISTANT_START,
)
from espnet2_echat.data.task_registry import (
    LABEL_BY_KIND,
    LABEL_FILES,
    STTC_SEPARATOR,
    TAG_LABEL_FILE,
    normalize_tag,
    tag_output_type,
)

# Where the CoT of a think sample comes from: the data dir's ``think`` file ("data"), or
# rebuilt as a tag CoT / language CoT. (Decoding's think modes are ``task_registry.THINK_MODES``.)
THINK_SOURCES = ("data", "tag", "language")
# Single-label ASR+X tasks that may become their X-only task (docs/tasks.md#layouts).
X_ONLY_TASKS = {
    "<TRANSCRIBE> <EMOTION>": "<EMOTION>",
    "<TRANSCRIBE> <STYLE>": "<STYLE>",
    "<TRANSCRIBE> <CAPTION>": "<CAPTION>",
    "<TRANSCRIBE> <GENDER>": "<GENDER>",
    "<TRANSCRIBE> <AGE>": "<AGE>",
    "<TRANSCRIBE> <S2TCHAT>": "<S2TCHAT>",
}
SENTINEL_TEXTS = ("None_in_extract_answer", "None_in_extract_X")
NONE_LABELS = ("<NONE>", "<None>", "<none>")
# The reference's self-identity filter (docs/labels.md#text-normalisation), as far as the
# reference's list is known.
IDENTITY_NAMES = (
    "MOSS Assistant", "MOSS助手", "QWEN", "QWEN Assistant", "QWEN助手", "ChatGPT", "chatgpt",
    "chatbot", "Helper", "helper", "AI Agent", "语言模型", "大型语言模型",
)
STREAM_TEXT_BLOCK = 6
STREAM_SPEECH_BLOCK = 18


@dataclass
class FilterConf:
    """Sample filters of docs/data_pipeline.md#filters (reference values); frames are 10 ms
    feature frames."""

    min_frames: int = 20
    max_frames: int = 20000
    token_min_length: int = 1
    token_max_length: int = 1200
    max_seq_len: int = 2000
    speech_text_ratio: float = 0.8
    identity_names: Sequence[str] = field(default_factory=lambda: list(IDENTITY_NAMES))


@dataclass
class Layout:
    """One sample's ids: ``input_ids`` (with its audio placeholders) and ``target``.

    ``history_audio`` lists the wav paths of the past user turns that enter as audio, in
    placeholder order (the sample's own audio takes the last placeholder);
    ``history_num_samples`` their lengths, where known (:meth:`EChatPreprocessor.inspect`).
    """

    task: str
    output_type: str
    input_ids: List[int]
    target: List[int]
    num_label_text: int  # text ids of the answer (including <|im_end|>)
    num_label_speech: int  # speech ids of the answer (including both markers)
    history_audio: List[str] = field(default_factory=list)
    history_num_samples: List[int] = field(default_factory=list)


class SampleError(ValueError):
    """A sample lacks what its task needs; the message names the utterance."""


def load_prompt_config(path: Optional[Union[str, Path]]) -> Dict[str, List[str]]:
    """Read ``{task tag: [instruction, ...]}``; ``None`` gives an empty config."""
    if path is None:
        return {}
    with open(path, encoding="utf-8") as f:
        conf = yaml.safe_load(f) or {}
    for task, prompts in conf.items():
        if not isinstance(prompts, list) or not prompts or not all(
            isinstance(p, str) and p for p in prompts
        ):
            raise ValueError(f"{path}: {task!r} must map to a non-empty list of strings")
    return {" ".join(k.split()): v for k, v in conf.items()}


def interleave(text_ids: Sequence[int], speech_ids: Sequence[int]) -> List[int]:
    """The reference's streaming target: 6 text ids, 18 speech ids, repeated
    (docs/tasks.md#layouts)."""
    out: List[int] = []
    s = 0
    for t in range(0, len(text_ids), STREAM_TEXT_BLOCK):
        out += text_ids[t : t + STREAM_TEXT_BLOCK]
        out += speech_ids[s : s + STREAM_SPEECH_BLOCK]
        s += STREAM_SPEECH_BLOCK
    return out + list(speech_ids[s:])


class EChatPreprocessor:
    """Data-dir sample -> ``speech`` (float32 waveform), ``input_ids`` and ``target``.

    ESPnet's preprocess-function interface (``__call__(uid, data)``, ``train``), without
    subclassing ``espnet2.train.preprocessor.AbsPreprocessor``: importing that module pulls
    g2p_en and nltk (seconds, and network attempts for nltk data) into every CLI.

    Args:
        tokenizer: HF tokenizer or its directory.
        speech_token_num: K + 1 (the speech head size).
        train: training mode (random prompt, X-only conversion, filters of training only).
        text_vocab_size: V, rows of the LLM's output embedding.
        prompt_config: yaml of understanding-task instructions (``conf/prompt_config.yaml``).
        think_mode: how think tasks get their CoT: ``data`` (the ``think`` file as is),
            ``tag`` (label CoT built from the label files, docs/labels.md#tag-think; replies of
            chat tasks start with a reply-emotion tag) or ``language`` (the ``think`` file as
            the natural-language CoT, docs/labels.md#language-think; leading tags of replies are
            removed).
        x_only_prob: probability that a single-label ASR+X sample becomes X-only (training).
        unknown_fill_prob: tag CoT: probability that missing labels become ``<&&>``.
        streaming_prob: probability that an S2S / TTS sample is trained in the interleaved
            6-text/18-speech format (docs/tasks.md#layouts); the ``<STREAMING>`` tags always are.
        history_max_turns: most recent history turns kept (0: all).
        history_as_audio: past user turns with a ``user_wav`` enter as audio, in the layout
            that inference uses (docs/data_pipeline.md#history; :meth:`LayoutBuilder.history`):
            the samples then also carry ``history_speech`` / ``history_speech_splits``. False:
            every past user turn enters as its transcript (``user_text``).
        use_question_as_instruction: understanding tasks use the ``question`` file as the
            instruction when present (the reference's behaviour for ``extra.question``).
            Off by default: in this plugin's data dirs ``question`` may hold a transcript.
        text_history_doubled_im_end: reproduce the reference's doubled ``<|im_end|>`` in
            history turns given as transcripts (``history_as_audio`` false; the audio layout
            always has it); ``data.quirks``.
        reference_compat: the old name of ``text_history_doubled_im_end`` (used when that is
            not given).
        filter_conf: :class:`FilterConf` fields.
        fs: expected sampling rate of ``speech``.
        label_aux_kinds: label kinds whose indices every sample carries as ``label_ids``
            (``models.label_heads``; set by the task when ``--label_aux_weight`` > 0).
    """

    def __init__(
        self,
        tokenizer,
        speech_token_num: int,
        train: bool,
        text_vocab_size: int = 151936,
        prompt_config: Optional[Union[str, Path]] = None,
        think_mode: str = "data",
        x_only_prob: float = 0.5,
        unknown_fill_prob: float = UNKNOWN_FILL_PROB,
        streaming_prob: float = 0.0,
        history_max_turns: int = 5,
        history_as_audio: bool = True,
        use_question_as_instruction: bool = False,
        reference_compat: bool = False,
        text_history_doubled_im_end: Optional[bool] = None,
        filter_conf: Optional[Mapping] = None,
        fs: int = 16000,
        label_aux_kinds: Optional[Sequence[str]] = None,
    ):
        self.train = train
        if think_mode not in THINK_SOURCES:
            raise ValueError(f"think_mode must be one of {THINK_SOURCES}, got {think_mode!r}")
        self.builder = LayoutBuilder(
            tokenizer, SpeechIds.from_config(speech_token_num, text_vocab_size)
        )
        self.prompts = load_prompt_config(prompt_config)
        self.think_mode = think_mode
        self.x_only_prob = x_only_prob
        self.unknown_fill_prob = unknown_fill_prob
        self.streaming_prob = streaming_prob
        self.history_max_turns = history_max_turns
        self.history_as_audio = history_as_audio
        self.use_question_as_instruction = use_question_as_instruction
        self.text_history_doubled_im_end = switch(text_history_doubled_im_end, reference_compat)
        self.filters = FilterConf(**(filter_conf or {}))
        self.fs = fs
        self.label_aux_kinds = tuple(label_aux_kinds) if label_aux_kinds else None

    # -- ESPnet entry point ---------------------------------------------------------------
    def __call__(self, uid: str, data: Dict[str, Union[str, np.ndarray]]) -> Dict[str, np.ndarray]:
        """The sample's arrays: ``speech``, ``input_ids``, ``target`` and, with
        ``history_as_audio``, ``history_speech`` (the waveforms of its past user turns,
        concatenated; empty for single-turn samples) and ``history_speech_splits`` (their
        lengths in samples). Every sample has the same keys, as ESPnet's collate needs."""
        layout = self.layout(uid, data, randomize=self.train)
        speech = data.get("speech")
        speech_enc = data.get("speech_enc")  # the frozen encoder's output (train.encoder_cache)
        if layout.output_type in TEXT_INPUT_OUTPUT_TYPES:
            speech_enc = None  # a TTS dir's wav.scp is the target audio, not an input
        if speech_enc is not None:
            if layout.input_ids.count(AUDIO_PLACEHOLDER) != 1 or layout.history_audio:
                raise SampleError(f"{uid}: cached encoder outputs serve single-turn audio only")
            speech = None
        if layout.output_type in TEXT_INPUT_OUTPUT_TYPES or speech is None:
            if speech_enc is None and (
                layout.input_ids.count(AUDIO_PLACEHOLDER) > len(layout.history_audio)
            ):
                raise SampleError(f"{uid}: task {layout.task!r} needs speech (wav.scp)")
            # Text-input tasks carry an empty waveform so that every batch has the same keys.
            speech = np.zeros(0, dtype=np.float32)
        out = {
            "speech": np.asarray(speech, dtype=np.float32),
            "input_ids": np.asarray(layout.input_ids, dtype=np.int64),
            "target": np.asarray(layout.target, dtype=np.int64),
        }
        if speech_enc is not None:
            out["speech_enc"] = np.asarray(speech_enc, dtype=np.float32)
        if self.label_aux_kinds:
            out["label_ids"] = label_indices(uid, data, self.label_aux_kinds)
        if self.history_as_audio:
            wavs = [
                self._read_history_wav(uid, k, path)
                for k, path in enumerate(layout.history_audio)
            ]
            empty = np.zeros(0, dtype=np.float32)
            out["history_speech"] = np.concatenate(wavs) if wavs else empty
            out["history_speech_splits"] = np.asarray([len(w) for w in wavs], dtype=np.int64)
        return out

    def _read_history_wav(self, uid: str, turn: int, path: str) -> np.ndarray:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{uid}: history audio {turn} (user_wav) {path} does not exist")
        wav, rate = soundfile.read(path, dtype="float32")
        if rate != self.fs:
            raise SampleError(
                f"{uid}: history audio {turn} (user_wav) {path} is {rate} Hz, "
                f"expected {self.fs} Hz"
            )
        # multi-channel audio is averaged to mono (docs/data_pipeline.md#osum-formats)
        if wav.ndim == 2:
            wav = wav.mean(axis=1)
        return wav

    # -- layout -----------------------------------------------------------------------------
    def layout(self, uid: str, data: Mapping, randomize: bool = False) -> Layout:
        """Build one sample's ids. ``randomize=False`` takes the first prompt and no conversion."""
        task = normalize_tag(str(data.get("task") or ""))
        history = self._history_turns(uid, data)
        if randomize and task in X_ONLY_TASKS and np.random.random() < self.x_only_prob:
            task = X_ONLY_TASKS[task]
        if task == "<S2TCHAT> <TEXT2TOKEN>" and history:
            task = "<S2TCHAT> <TEXT2TOKEN> <HISTORY>"
        if randomize and self.streaming_prob > 0 and not history:
            if task in ("<S2TCHAT> <TEXT2TOKEN>", "<TEXT2TOKEN>"):
                if np.random.random() < self.streaming_prob:
                    task += " <STREAMING>"
        output_type = tag_output_type(task)
        speech_tokens = None
        if output_type in SPEECH_OUTPUT_TYPES:
            speech_tokens = _int_list(uid, "speech_token", _require(uid, data, "speech_token"))
        if output_type.startswith("text2token"):
            text_input = normalize_text(str(_require(uid, data, "text")), task)
            label = text_input
        elif output_type == "text2text":
            text_input = str(_require(uid, data, "question"))
            label = self._reply(uid, data, task)
        else:
            text_input = None
            label = self._label(uid, data, task, output_type, randomize)
        instruction = self._instruction(data, task, randomize) if output_type == "text" else None

        b = self.builder
        if output_type.endswith("_streaming"):
            prompt = b.prompt(output_type, text_input=text_input, inference=False)
            text_ids = b.label(label)
            speech_ids = [b.speech_marker] + b.speech(speech_tokens) + [b.speech_marker]
            if 3 * len(text_ids) > len(speech_ids):
                raise SampleError(
                    f"{uid}: interleaved format needs 3 x {len(text_ids)} text ids <= "
                    f"{len(speech_ids)} speech ids"
                )
            answer = interleave(text_ids, speech_ids)
            input_ids, target = prompt + answer, [IGNORE_ID] * len(prompt) + answer
            num_text, num_speech = len(text_ids), len(speech_ids)
        else:
            input_ids, target = b.training_example(
                output_type,
                label_text=None if output_type.startswith("text2token") else label,
                speech_tokens=speech_tokens,
                instruction=instruction,
                text_input=text_input,
            )
            num_speech = len(speech_tokens) + 2 if speech_tokens is not None else 0
            num_text = sum(1 for t in target if t != IGNORE_ID) - num_speech
            if output_type == "text2token":
                num_text = len(b.label(label))
        history_audio: List[str] = []
        if history:
            cut = len(b.system(output_type))
            if self.history_as_audio:
                hist, history_audio = b.history(self._history_objects(uid, history))
            else:
                hist = self._history_ids(history)
            input_ids = input_ids[:cut] + hist + input_ids[cut:]
            target = target[:cut] + [IGNORE_ID] * len(hist) + target[cut:]
        return Layout(task, output_type, input_ids, target, num_text, num_speech, history_audio)

    def _instruction(self, data: Mapping, task: str, randomize: bool) -> Optional[str]:
        if self.use_question_as_instruction and data.get("question"):
            return str(data["question"])
        prompts = self.prompts.get(task)
        if not prompts:
            return None
        return prompts[np.random.randint(len(prompts))] if randomize else prompts[0]

    def _label(self, uid: str, data: Mapping, task: str, output_type: str, randomize: bool):
        """The answer text of an audio-input task (before tokenisation)."""
        if output_type == "text":
            return normalize_text(self._understanding_label(uid, data, task), task)
        reply = self._reply(uid, data, task)
        if output_type in ("s2t_chat_think", "speech2text_token_think"):
            return self._think_target(uid, data, reply, randomize)
        return reply

    def _understanding_label(self, uid: str, data: Mapping, task: str) -> str:
        tags = task.split()
        parts = []
        if "<TRANSCRIBE>" in tags:
            parts.append(str(_require(uid, data, "text")))
        for tag in tags:
            name = TAG_LABEL_FILE.get(tag)
            if name is not None:
                value = str(_require(uid, data, name))
                try:
                    parts.append(normalize_label(LABEL_FILES[name], value))
                except ValueError as e:
                    raise SampleError(f"{uid}: {name}: {e}") from None
        if "<S2TCHAT>" in tags:
            parts.append(STTC_SEPARATOR + str(_require(uid, data, "reply")))
        return "".join(parts)

    def _reply(self, uid: str, data: Mapping, task: str) -> str:
        reply = normalize_text(str(_require(uid, data, "reply")), task)
        if self.think_mode == "tag" and "<S2TCHAT>" in task.split():
            emotion = data.get("reply_emotion")
            tag, rest = ensure_reply_emotion(reply)
            if emotion:
                tag = normalize_label("reply_emotion", str(emotion))
            return tag + rest
        if self.think_mode == "language":
            return split_leading_tag(reply)[1]
        return reply

    def _think_target(self, uid: str, data: Mapping, reply: str, randomize: bool) -> str:
        if self.think_mode == "tag":
            q_txt = data.get("text") or data.get("question")
            if not q_txt:
                raise SampleError(f"{uid}: tag think needs the user transcript (text or question)")
            tag, rest = split_leading_tag(reply)
            use_unknown = (
                np.random.random() < self.unknown_fill_prob if randomize else True
            )
            return build_tag_think_target(
                normalize_text(str(q_txt), ""),
                rest,
                **{
                    kind: data.get(LABEL_BY_KIND[kind].file)
                    for kind in ("age", "gender", "emotion", "event")
                },
                reply_emotion=tag,
                use_unknown=use_unknown,
            )
        think = str(_require(uid, data, "think"))
        if self.think_mode == "language":
            return build_language_think(think, reply)
        return wrap_think(think, reply)

    # -- history (docs/data_pipeline.md#history) -------------------------------------------
    def _history_turns(self, uid: str, data: Mapping) -> List[dict]:
        raw = data.get("history")
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return []
        try:
            turns = json.loads(raw) if isinstance(raw, str) else list(raw)
        except json.JSONDecodeError as e:
            raise SampleError(f"{uid}: history is not valid JSON: {e}") from None
        if self.history_max_turns > 0:
            turns = turns[-self.history_max_turns :]
        return turns

    def _history_objects(self, uid: str, turns: List[dict]) -> List[Turn]:
        """History JSON turns -> layout turns; ``user_audio`` is the ``user_wav`` path."""
        out = []
        for k, turn in enumerate(turns):
            if not turn.get("user_wav") and not turn.get("user_text"):
                raise SampleError(f"{uid}: history turn {k} has neither user_wav nor user_text")
            out.append(
                Turn(
                    reply_ids=self.builder.text(turn["reply"]),
                    speech_tokens=list(turn.get("speech_token") or []),
                    user_audio=turn.get("user_wav") or None,
                    user_text=turn.get("user_text"),
                )
            )
        return out

    def _history_ids(self, turns: List[dict]) -> List[int]:
        """Past turns as text (user transcript, reply, reply speech tokens), never supervised:
        the layout of ``history_as_audio`` false."""
        b = self.builder
        ids: List[int] = []
        for turn in turns:
            ids += b.text(turn["user_text"])
            ids += layout_quirks.after_text_history_user(b, self.text_history_doubled_im_end)
            ids += b.text(ASSISTANT_START) + b.text(turn["reply"])
            tokens = turn.get("speech_token") or []
            if tokens:
                ids += [b.speech_marker] + b.speech(tokens) + [b.speech_marker]
            ids += b.text(TURN_END) + b.text(USER_START)
        return ids

    # -- filters (docs/data_pipeline.md#filters) -------------------------------------------
    def filter_reason(self, uid: str, data: Mapping, num_samples: Optional[int]) -> Optional[str]:
        """Why the sample must be dropped from training, or None to keep it.

        ``num_samples`` is the length of its audio (None for text-input samples).
        """
        return self.inspect(uid, data, num_samples)[0]

    def inspect(
        self, uid: str, data: Mapping, num_samples: Optional[int]
    ) -> Tuple[Optional[str], Optional[Layout]]:
        """(drop reason or None, deterministic layout or None) of one sample."""
        reason, layout = self._check(uid, data, num_samples)
        return reason, (layout if reason is None else None)

    def _check(self, uid: str, data: Mapping, num_samples: Optional[int]):
        f = self.filters
        texts = [str(data[k]) for k in ("text", "reply") if data.get(k) is not None]
        if any(t.strip() in SENTINEL_TEXTS for t in texts):
            return "sentinel text", None
        if self.train:
            labels = texts + [str(data[k]) for k in TAG_LABEL_FILE.values() if data.get(k) is not None]
            if any(n in t for t in labels for n in NONE_LABELS):
                return "<NONE> label", None
            if any(n in t for t in texts for n in f.identity_names):
                return "self-identity name", None
        try:
            layout = self.layout(uid, data, randomize=False)
        except SampleError as e:
            return f"invalid: {e}", None
        if layout.history_audio:
            lengths = []
            for k, path in enumerate(layout.history_audio):
                if not Path(path).is_file():
                    raise FileNotFoundError(
                        f"{uid}: history audio {k} (user_wav) {path} does not exist"
                    )
                lengths.append(soundfile.info(path).frames)
            layout = replace(layout, history_num_samples=lengths)
        frames = 0
        if layout.output_type not in TEXT_INPUT_OUTPUT_TYPES:
            frames = (num_samples or 0) // 160
            if not f.min_frames <= frames <= f.max_frames:
                limits = f"[{f.min_frames}, {f.max_frames}]"
                return f"audio length {frames} frames outside {limits}", layout
        if not f.token_min_length <= layout.num_label_text <= f.token_max_length:
            return f"label length {layout.num_label_text} outside token limits", layout
        if self.estimate_length(layout, num_samples) > f.max_seq_len:
            return f"sequence longer than max_seq_len {f.max_seq_len}", layout
        if layout.num_label_speech:
            if f.speech_text_ratio * layout.num_label_text >= layout.num_label_speech:
                return "too few speech tokens for the text", layout
        return None, layout

    @staticmethod
    def estimate_length(layout: Layout, num_samples: Optional[int]) -> int:
        """LLM sequence length: ids plus audio frames at 12.5 Hz (100 Hz features / 8),
        history audio included."""
        def rows(n: Optional[int]) -> int:  # adapter frames replacing one placeholder
            return -(-((n or 0) // 160) // 8) - 1

        audio = sum(rows(n) for n in layout.history_num_samples)
        if layout.input_ids.count(AUDIO_PLACEHOLDER) > len(layout.history_audio):
            audio += rows(num_samples)
        return len(layout.input_ids) + audio


def _require(uid: str, data: Mapping, name: str):
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise SampleError(f"{uid}: its task needs {name!r}, which this utterance lacks")
    return value


def _int_list(uid: str, name: str, value) -> List[int]:
    if isinstance(value, np.ndarray):
        return [int(v) for v in value.reshape(-1)]
    try:
        return [int(v) for v in str(value).split()]
    except ValueError:
        raise SampleError(f"{uid}: {name} must be integers separated by spaces") from None
