"""The one registry of tasks, task tags, label kinds and data/decode files.

Everything that names a task reads it from here: the data-dir validator and fixer, the
OSUM format converters, the training preprocessor and dataset, the ESPnet task, decoding,
scoring, ``local/make_mini_corpus.py`` and the recipe (through
``python -m espnet2_echat.bin.task_registry``). Adding a task means adding it here.

Three vocabularies meet here (see ``docs/tasks.md``):

* **task tags**: the reference's task strings of a data dir's ``task`` file, e.g.
  ``<TRANSCRIBE>`` or ``<S2TCHAT> <TEXT2TOKEN> <THINK>``; each maps to a layout
  ``output_type`` (:data:`TAG_OUTPUT_TYPES`);
* **decoding tasks** (:data:`TASKS`): the ``--task`` names of decoding and scoring
  (``asr``, ``emotion``, ..., ``tts``), each with the tag it stands for, its input file,
  its label kind and whether it ends in speech;
* **data sets** (:data:`DATA_SETS`): the set-name suffixes of the recipe's data dirs
  (``test_s2t_tag_think``), each a decoding task under a think mode.

This module imports nothing from the package, so the recipe's shell can ask it quickly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

THINK_MODES: Tuple[str, ...] = ("none", "tag", "language")
# Separator between transcript and reply in the target of <TRANSCRIBE> <S2TCHAT> (STTC).
STTC_SEPARATOR = "<开始回答>"


# ----------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class LabelKind:
    """One kind of label: its data-dir file, the task tag asking for it, its OSUM key.

    Attributes:
        kind: the label set name of ``espnet2_echat.data.labels.normalize_label``.
        file: the data-dir file holding it (``utt2emotion``).
        tag: the paralinguistic task tag whose target is this label (None: no task).
        osum_key: the key of OSUM's ``extra`` dict holding it (None: not in ``extra``).
    """

    kind: str
    file: str
    tag: Optional[str]
    osum_key: Optional[str]


LABEL_KINDS: Tuple[LabelKind, ...] = (
    LabelKind("age", "utt2age", "<AGE>", "age"),
    LabelKind("gender", "utt2gender", "<GENDER>", "gender"),
    LabelKind("emotion", "utt2emotion", "<EMOTION>", "q_emotion"),
    LabelKind("event", "utt2event", "<CAPTION>", "caption"),
    LabelKind("style", "utt2style", "<STYLE>", "style"),
    LabelKind("reply_emotion", "reply_emotion", None, None),
)
LABEL_BY_KIND: Dict[str, LabelKind] = {label.kind: label for label in LABEL_KINDS}
# data-dir label file -> label kind
LABEL_FILES: Dict[str, str] = {label.file: label.kind for label in LABEL_KINDS}
# paralinguistic tag of a task string -> its label kind
TAG_LABEL: Dict[str, LabelKind] = {label.tag: label for label in LABEL_KINDS if label.tag}
# paralinguistic tag of a task string -> the data-dir file holding its label
TAG_LABEL_FILE: Dict[str, str] = {tag: label.file for tag, label in TAG_LABEL.items()}
# OSUM extra key -> data-dir label file
OSUM_LABEL_KEYS: Dict[str, str] = {
    label.osum_key: label.file for label in LABEL_KINDS if label.osum_key
}


# -------------------------------------------------------------------------- task tags

# Understanding tags (the reference's spec section 2.1 and the 23 keys of its
# prompt_config.yaml): output_type ``text``.
UNDERSTANDING_TAGS: Tuple[str, ...] = (
    "<TRANSCRIBE>",
    "<TRANSCRIBE> <ALIGN>",
    "<TRANSCRIBE> <S2TCHAT>",
    "<TRANSCRIBE> <EMOTION>",
    "<EMOTION>",
    "<TRANSCRIBE> <STYLE>",
    "<STYLE>",
    "<TRANSCRIBE> <CAPTION>",
    "<CAPTION>",
    "<CAPTION> <AUDIO>",
    "<TRANSCRIBE> <GENDER>",
    "<GENDER>",
    "<TRANSCRIBE> <AGE>",
    "<AGE>",
    "<TRANSCRIBE> <AGE> <GENDER>",
    "<AGE> <GENDER>",
    "<TRANSCRIBE> <STYLE> <AGE> <GENDER>",
    "<STYLE> <AGE> <GENDER>",
    "<TRANSCRIBE> <PUNCTUATION>",
    "<TRANSCRIBE> <CAPTION> <AGE> <GENDER>",
    "<TRANSCRIBE> <EMOTION> <AGE> <GENDER>",
    "<TRANSCRIBE> <AGE> <GENDER> <STYLE> <EMOTION>",
    "<TRANSCRIBE> <CAPTION> <AGE> <GENDER> <EMOTION> <STYLE>",
)
# Generation tags and their layout output_type (``espnet2_echat.data.templates``).
GENERATION_TAG_OUTPUT_TYPES: Dict[str, str] = {
    "<TEXT2TOKEN>": "text2token",
    "<TEXT2TOKEN> <STREAMING>": "text2token_streaming",
    "<S2TCHAT> <TEXT2TOKEN>": "speech2text_token",
    "<Speech2TEXTandTOKEN>": "speech2text_token",
    "<S2TCHAT> <TEXT2TOKEN> <EMOTION>": "speech2text_token",
    "<S2TCHAT> <TEXT2TOKEN> <THINK>": "speech2text_token_think",
    "<S2TCHAT> <TEXT2TOKEN> <HISTORY>": "speech2text_token_history",
    "<S2TCHAT> <TEXT2TOKEN> <STREAMING>": "speech2text_token_streaming",
    "<TEXT2TEXT>": "text2text",
    "<S2TCHAT>": "s2t_chat",
    "<S2TCHAT> <THINKER>": "s2t_chat_think",
    "<S2TCHAT_FAKE>": "s2t_chat_fake",
}
GENERATION_TAGS: Tuple[str, ...] = tuple(GENERATION_TAG_OUTPUT_TYPES)
TASK_TAGS: Tuple[str, ...] = UNDERSTANDING_TAGS + GENERATION_TAGS
TAG_OUTPUT_TYPES: Dict[str, str] = {
    **{tag: "text" for tag in UNDERSTANDING_TAGS},
    **GENERATION_TAG_OUTPUT_TYPES,
    "TEXT2TOKEN": "text2token",  # the reference also accepts TTS without brackets
}
DEFAULT_TAG = "<TRANSCRIBE>"  # a sample without a task is ASR (as in the reference)


def normalize_tag(tag: Optional[str]) -> str:
    """A task string with single spaces; an empty or missing one is :data:`DEFAULT_TAG`."""
    return " ".join((tag or DEFAULT_TAG).split()) or DEFAULT_TAG


def tag_output_type(tag: Optional[str]) -> str:
    """The layout output_type of a task string; any unlisted tag is an understanding task."""
    return TAG_OUTPUT_TYPES.get(normalize_tag(tag), "text")


def tag_label_files(tag: str) -> Tuple[str, ...]:
    """Label files the target of an understanding tag holds, in the tag's order."""
    if normalize_tag(tag) not in UNDERSTANDING_TAGS:
        return ()
    return tuple(TAG_LABEL_FILE[t] for t in tag.split() if t in TAG_LABEL_FILE)


# -------------------------------------------------------------------- decoding tasks


@dataclass(frozen=True)
class DecodeInput:
    """A data-dir file fed to decoding: ESPnet's ``path,name,type`` triple without the dir."""

    file: str
    name: str
    type: str

    def triple(self, data_dir: str) -> str:
        """``--data_path_and_name_and_type`` value for the file in ``data_dir``."""
        return f"{data_dir.rstrip('/')}/{self.file},{self.name},{self.type}"


SPEECH_INPUT = DecodeInput("wav.scp", "speech", "sound")
HISTORY_INPUT = DecodeInput("history", "history", "text")  # fed when the data dir has it


@dataclass(frozen=True)
class Task:
    """One decoding task (``--task`` of ``echat_inference`` and ``echat_score``).

    Attributes:
        name: the ``--task`` name.
        tag: the task string of its data dirs without think, history or streaming.
        kind: what scoring does: ``understanding``, ``s2t_chat``, ``s2s``, ``t2t``, ``tts``.
        input: the data-dir file the user turn comes from.
        transcribe: the target holds the transcript (ASR).
        label: the paralinguistic label kind it predicts.
        speech_output: decoding ends with speech tokens.
        takes_history: a request may carry earlier turns of a conversation.
        think_tag: its task string under ``--think tag|language`` (None: no think).
        history_tag: its task string with earlier turns (None: no history layout).
        streaming_tag: its task string in the interleaved streaming format.
    """

    name: str
    tag: str
    kind: str
    input: DecodeInput = SPEECH_INPUT
    transcribe: bool = False
    label: Optional[str] = None
    speech_output: bool = False
    takes_history: bool = False
    think_tag: Optional[str] = None
    history_tag: Optional[str] = None
    streaming_tag: Optional[str] = None

    @property
    def text_input(self) -> bool:
        """The user turn is text (T2T, TTS), not audio."""
        return self.input is not SPEECH_INPUT

    @property
    def think_modes(self) -> Tuple[str, ...]:
        """The ``--think`` values the task accepts."""
        return THINK_MODES if self.think_tag else ("none",)

    @property
    def label_file(self) -> Optional[str]:
        """The data-dir file of its label (None for tasks without one)."""
        return LABEL_BY_KIND[self.label].file if self.label else None

    def tag_for(self, think: str = "none", history: bool = False, streaming: bool = False) -> str:
        """The task string of one request: think, history and streaming variants."""
        check_task(self.name, think)
        if streaming:
            if self.streaming_tag is None or think != "none":
                raise ValueError(
                    f"interleaved output exists for {' and '.join(STREAMING_TASKS)} without "
                    f"think, not {self.name!r} with think={think!r}"
                )
            return self.streaming_tag
        if think != "none":
            return self.think_tag
        if history and self.history_tag:
            return self.history_tag
        return self.tag

    def output_type(self, think: str = "none", history: bool = False, streaming: bool = False) -> str:
        """The layout output_type of one request."""
        return tag_output_type(self.tag_for(think, history, streaming))


def _paralinguistic(name: str, label: str) -> Task:
    return Task(name, LABEL_BY_KIND[label].tag, "understanding", label=label)


TASKS: Dict[str, Task] = {
    task.name: task
    for task in (
        Task("asr", "<TRANSCRIBE>", "understanding", transcribe=True),
        _paralinguistic("emotion", "emotion"),
        _paralinguistic("gender", "gender"),
        _paralinguistic("age", "age"),
        _paralinguistic("event", "event"),
        Task(
            "s2t_chat",
            "<S2TCHAT>",
            "s2t_chat",
            takes_history=True,
            think_tag="<S2TCHAT> <THINKER>",
        ),
        Task(
            "s2s",
            "<S2TCHAT> <TEXT2TOKEN>",
            "s2s",
            speech_output=True,
            takes_history=True,
            think_tag="<S2TCHAT> <TEXT2TOKEN> <THINK>",
            history_tag="<S2TCHAT> <TEXT2TOKEN> <HISTORY>",
            streaming_tag="<S2TCHAT> <TEXT2TOKEN> <STREAMING>",
        ),
        Task("t2t", "<TEXT2TEXT>", "t2t", input=DecodeInput("question", "question", "text")),
        Task(
            "tts",
            "<TEXT2TOKEN>",
            "tts",
            input=DecodeInput("text", "text", "text"),
            speech_output=True,
            streaming_tag="<TEXT2TOKEN> <STREAMING>",
        ),
    )
}
TASK_NAMES: Tuple[str, ...] = tuple(TASKS)
UNDERSTANDING_TASKS: Tuple[str, ...] = tuple(
    t.name for t in TASKS.values() if t.kind == "understanding"
)
CHAT_KINDS: Tuple[str, ...] = ("s2t_chat", "s2s", "t2t")  # scored as dialogue replies
SPEECH_TASKS: Tuple[str, ...] = tuple(t.name for t in TASKS.values() if t.speech_output)
TEXT_INPUT_TASKS: Tuple[str, ...] = tuple(t.name for t in TASKS.values() if t.text_input)
HISTORY_TASKS: Tuple[str, ...] = tuple(t.name for t in TASKS.values() if t.takes_history)
THINK_TASKS: Tuple[str, ...] = tuple(t.name for t in TASKS.values() if t.think_tag)
STREAMING_TASKS: Tuple[str, ...] = tuple(t.name for t in TASKS.values() if t.streaming_tag)


def check_task(task: str, think: str = "none") -> Task:
    """The registry entry of ``task``; ``ValueError`` naming the accepted values otherwise."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of: {' '.join(TASK_NAMES)}")
    if think not in THINK_MODES:
        raise ValueError(f"unknown think mode {think!r}; expected one of: {' '.join(THINK_MODES)}")
    if think not in TASKS[task].think_modes:
        raise ValueError(
            f"think={think!r} applies to {' and '.join(THINK_TASKS)} only, not to {task!r}"
        )
    return TASKS[task]


THINK_TAG_WORDS: Tuple[str, ...] = ("<THINK>", "<THINKER>")  # a tag with a CoT target
# Words that make a tag a generation (stage-2) tag.
GENERATION_TAG_WORDS: Tuple[str, ...] = (
    "<TEXT2TOKEN>",
    "<S2TCHAT>",
    "<S2TCHAT_FAKE>",
    "<TEXT2TEXT>",
    "<HISTORY>",
    "<Speech2TEXTandTOKEN>",
)


@dataclass(frozen=True)
class ScoredAs:
    """How a data dir with one task tag is decoded and scored.

    ``task`` is a chat/TTS task name, or ``understanding`` with the transcript
    (``transcribe``) and/or paralinguistic label kinds (``labels``) to score.
    """

    task: str
    transcribe: bool = False
    labels: Tuple[str, ...] = ()

    @property
    def decode_tasks(self) -> Tuple[str, ...]:
        """The ``--task`` values that decode it: one per label and/or ``asr``."""
        if self.task != "understanding":
            return (self.task,)
        return (("asr",) if self.transcribe else ()) + self.labels


def scored_as(tag: str) -> ScoredAs:
    """Read a task string as scoring does (``<TRANSCRIBE> <S2TCHAT>`` is S2T chat)."""
    words = tag.split()
    if not words:
        raise ValueError("empty task tag")
    if "<Speech2TEXTandTOKEN>" in words or ("<S2TCHAT>" in words and "<TEXT2TOKEN>" in words):
        return ScoredAs("s2s")
    if "<TEXT2TOKEN>" in words or words == ["TEXT2TOKEN"]:
        return ScoredAs("tts")
    if "<TEXT2TEXT>" in words:
        return ScoredAs("t2t")
    if "<S2TCHAT>" in words or "<S2TCHAT_FAKE>" in words:
        return ScoredAs("s2t_chat")
    transcribe = "<TRANSCRIBE>" in words
    labels = tuple(TAG_LABEL[w].kind for w in words if w in TAG_LABEL)
    if not transcribe and not labels:
        raise ValueError(f"task tag {tag!r} names no task that can be scored")
    return ScoredAs("understanding", transcribe, labels)


# ------------------------------------------------------------------------- data sets


@dataclass(frozen=True)
class DataSet:
    """A kind of data dir of the recipe: ``{train,dev,test}_<suffix>``.

    Attributes:
        suffix: the set-name suffix (``s2t_tag_think``).
        task: the decoding task of its test sets.
        think: the think mode its samples carry (``none`` for sets without CoT).
        history: its samples have earlier turns.
    """

    suffix: str
    task: str
    think: str = "none"
    history: bool = False

    @property
    def tag(self) -> str:
        """The task string written to the set's ``task`` file."""
        return TASKS[self.task].tag_for(self.think, self.history)


DATA_SETS: Tuple[DataSet, ...] = (
    DataSet("asr", "asr"),
    DataSet("emotion", "emotion"),
    DataSet("gender", "gender"),
    DataSet("age", "age"),
    DataSet("event", "event"),
    DataSet("tts", "tts"),
    DataSet("s2t", "s2t_chat"),
    DataSet("s2t_tag_think", "s2t_chat", think="tag"),
    DataSet("s2t_language_think", "s2t_chat", think="language"),
    DataSet("s2s", "s2s"),
    DataSet("s2s_tag_think", "s2s", think="tag"),
    DataSet("s2s_language_think", "s2s", think="language"),
    DataSet("t2t", "t2t"),
    DataSet("multiturn", "s2s", history=True),
)


def data_set_of(set_name: str) -> Optional[DataSet]:
    """The data-set kind of a set name (longest matching ``_<suffix>``), or None."""
    matches = [s for s in DATA_SETS if set_name.endswith("_" + s.suffix) or set_name == s.suffix]
    return max(matches, key=lambda s: len(s.suffix)) if matches else None


# ------------------------------------------------------------------------------ files

# Per-utterance data-dir files read into a training/decoding sample -> the sample's name.
SAMPLE_FILES: Dict[str, str] = {
    "wav.scp": "speech",
    "task": "task",
    "text": "text",
    "question": "question",
    "reply": "reply",
    "think": "think",
    "speech_token": "speech_token",
    "history": "history",
    **{label.file: label.file for label in LABEL_KINDS},
}
# Every per-utterance file the data-dir validator knows (docs/data_dir.md).
UTT_FILES: Tuple[str, ...] = tuple(SAMPLE_FILES) + (
    "reply_wav.scp",
    "utt2spk",
    "utt2dur",
    "utt2num_samples",
    "utt2lang",
    "prompt_wav.scp",
    "prompt_text",
)
# What echat_inference writes to its output dir, keyed by utterance id.
DECODE_FILES: Tuple[str, ...] = ("text", "think", "token_int", "speech_token", "wav.scp")
