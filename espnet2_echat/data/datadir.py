"""Read, write, validate and fix Kaldi-style data dirs of speech-LLM samples.

The format is the one docs/data_dir.md describes: one utterance per line
(``uttid value``), every file sorted by utterance id in C-locale (byte) order. The
``task`` file lists every utterance; which other files an utterance needs follows from
its task tag (:func:`required_files`). Optional files may cover a subset of the
utterances, but never hold an id that ``task`` lacks.

Kaldi's ``utils/validate_data_dir.sh`` / ``fix_data_dir.sh`` know nothing of the
speech-LLM files (task tags, labels, speech tokens, JSON history) and stop at the first
error, so this module re-implements the checks with file, line and utterance in every
message, and a fixer that drops only the bad utterances.
"""

from __future__ import annotations

import json
import logging
import shutil
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Set, Tuple

import soundfile

from espnet2_echat.data.labels import is_label
from espnet2_echat.data.task_registry import (
    LABEL_FILES,
    TASK_TAGS,
    UTT_FILES,
    tag_label_files,
)
from espnet2_echat.safety.atomic import atomic_dir, atomic_write, atomic_write_text
from espnet2_echat.safety.names import check_name, name_problem

# Files keyed by utterance id that the validator knows.
KNOWN_UTT_FILES: Tuple[str, ...] = UTT_FILES
# Files whose value may not be empty.
NON_EMPTY_FILES = (
    "text",
    "question",
    "reply",
    "think",
    "task",
    "wav.scp",
    "reply_wav.scp",
    "utt2spk",
)
# Kaldi files that are not keyed by utterance id (never filtered by the fixer).
NON_UTT_FILES = ("spk2utt", "feats_type", "audio_format", "speech_token_vocab")
# Keys every history turn has; a turn may also name its reply audio as ``reply_wav``.
HISTORY_KEYS = ("user_wav", "user_text", "reply", "speech_token")
DEFAULT_SPEECH_TOKEN_VOCAB = 4096


@dataclass(frozen=True)
class Issue:
    """One problem in a data dir: where it is and what was expected."""

    file: str
    line: Optional[int]
    utt: Optional[str]
    kind: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        who = f" utt {self.utt}:" if self.utt is not None else ""
        return f"{where}:{who} [{self.kind}] {self.message}"


@dataclass
class KaldiFile:
    """The parsed content of one ``uttid value`` file."""

    entries: Dict[str, str] = field(default_factory=dict)
    lines: Dict[str, int] = field(default_factory=dict)
    order: List[str] = field(default_factory=list)


class DataDirError(RuntimeError):
    """Raised when a data dir cannot be used; the message lists every issue."""

    def __init__(self, issues: List[Issue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def parse_kaldi_file(path: Path, issues: List[Issue]) -> KaldiFile:
    """Parse ``uttid value`` lines, appending encoding/format/order problems to ``issues``.

    Lines that are not UTF-8 or have an empty value (for :data:`NON_EMPTY_FILES`) are
    reported and left out; duplicate ids keep the first line.
    """
    name = path.name
    result = KaldiFile()
    previous: Optional[str] = None
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                issues.append(Issue(name, lineno, None, "format", "empty line"))
                continue
            fields = raw.split(None, 1)  # id, then the value after any run of blanks
            head, rest = fields[0], (fields[1] if len(fields) > 1 else b"")
            utt = head.decode("utf-8", errors="replace").strip()
            try:
                value = rest.decode("utf-8").strip()
                utt = head.decode("utf-8")
            except UnicodeDecodeError as e:
                issues.append(Issue(name, lineno, utt, "encoding", f"not valid UTF-8 ({e.reason})"))
                continue
            bad_id = name_problem(utt)
            if bad_id:
                issues.append(Issue(name, lineno, utt, "bad_id", f"utterance id {bad_id}; expected a plain name"))
                continue
            if name in NON_EMPTY_FILES and not value:
                issues.append(Issue(name, lineno, utt, "empty", "empty value"))
                continue
            if utt in result.entries:
                issues.append(
                    Issue(
                        name,
                        lineno,
                        utt,
                        "duplicate",
                        f"duplicate id (first on line {result.lines[utt]})",
                    )
                )
                continue
            if previous is not None and utt < previous:
                issues.append(
                    Issue(
                        name,
                        lineno,
                        utt,
                        "unsorted",
                        f"not sorted: comes after {previous!r} (expected C-locale order)",
                    )
                )
            previous = utt
            result.entries[utt] = value
            result.lines[utt] = lineno
            result.order.append(utt)
    return result


def read_kaldi_map(path: Path) -> Dict[str, str]:
    """Read a ``uttid value`` file into a dict; raise :class:`DataDirError` on bad lines."""
    issues: List[Issue] = []
    parsed = parse_kaldi_file(Path(path), issues)
    errors = [i for i in issues if i.kind != "unsorted"]
    if errors:
        raise DataDirError(errors)
    return parsed.entries


def kaldi_map_text(path: Path, entries: Mapping[str, str], check_ids: bool = True) -> str:
    """The ``uttid value`` lines of ``entries`` sorted by id (C-locale order); ids must be
    plain names (:mod:`espnet2_echat.safety.names`) unless ``check_ids`` is False."""
    lines = []
    for utt in sorted(entries):
        value = entries[utt]
        if check_ids:
            check_name(utt, f"{path}: utterance id")
        if "\n" in value:
            raise ValueError(f"{path}: utt {utt}: value contains a newline")
        lines.append(f"{utt} {value}\n")
    return "".join(lines)


def write_kaldi_map(path: Path, entries: Mapping[str, str], check_ids: bool = True) -> None:
    """Write ``uttid value`` lines sorted by id, atomically (a temporary name renamed when
    complete: a killed writer leaves the previous file)."""
    atomic_write_text(path, kaldi_map_text(path, entries, check_ids))


def spk2utt_map(utt2spk: Mapping[str, str]) -> Dict[str, str]:
    """``{speaker: "utt1 utt2 ..."}`` of an utt->speaker map."""
    spk2utt: Dict[str, List[str]] = {}
    for utt in sorted(utt2spk):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    return {s: " ".join(u) for s, u in spk2utt.items()}


def write_spk2utt(data_dir: Path, utt2spk: Mapping[str, str]) -> None:
    """Write ``spk2utt`` from an utt->speaker map."""
    write_kaldi_map(Path(data_dir) / "spk2utt", spk2utt_map(utt2spk), check_ids=False)


def write_data_dir(data_dir: Path, utts: Mapping[str, Mapping[str, str]]) -> None:
    """Write a data dir from ``{uttid: {file_name: value}}``.

    Every file named by any utterance is written, holding the utterances that have it;
    ``spk2utt`` is derived from ``utt2spk``. Values are written as given; label files
    must already be in their canonical spelling (see :mod:`espnet2_echat.data.labels`).
    Every file is first written in full under a temporary name; the renames come last, so
    a writer killed while writing leaves the previous files.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    files: Dict[str, Dict[str, str]] = {}
    for utt, values in utts.items():
        for name, value in values.items():
            files.setdefault(name, {})[utt] = value
    texts = {name: kaldi_map_text(data_dir / name, entries) for name, entries in files.items()}
    if "utt2spk" in files:
        texts["spk2utt"] = kaldi_map_text(
            data_dir / "spk2utt", spk2utt_map(files["utt2spk"]), check_ids=False
        )
    with ExitStack() as stack:  # all temporary files complete before the first rename
        for name, text in texts.items():
            stack.enter_context(atomic_write(data_dir / name)).write(text)


def load_data_dir(data_dir: Path, require_speech_tokens: bool = True) -> Dict[str, Dict[str, str]]:
    """Read every per-utterance file of a valid data dir: ``{file_name: {uttid: value}}``.

    Raises :class:`DataDirError` if the dir does not validate (audio is not opened).
    """
    issues = validate_data_dir(
        data_dir, check_audio=False, require_speech_tokens=require_speech_tokens
    )
    if issues:
        raise DataDirError(issues)
    return {
        p.name: read_kaldi_map(p)
        for p in sorted(Path(data_dir).iterdir())
        if p.is_file() and p.name in KNOWN_UTT_FILES
    }


def required_files(
    task: str, require_speech_tokens: bool = True, require_targets: bool = True
) -> Set[str]:
    """Files an utterance with this task tag needs besides ``task``.

    With ``require_speech_tokens=False`` (a corpus before token extraction) the
    ``speech_token`` file is not required; with ``require_targets=False`` (a test set
    without references) neither are ``reply``, ``think`` and ``speech_token``.
    """
    tags = task.split()
    needed: Set[str] = set()
    text_input = task in ("<TEXT2TEXT>",) or (tags and tags[0] == "<TEXT2TOKEN>")
    if not text_input:
        needed |= {"wav.scp", "utt2spk"}
    if "<TRANSCRIBE>" in tags or (tags and tags[0] == "<TEXT2TOKEN>"):
        needed.add("text")
    if "<S2TCHAT>" in tags or "<S2TCHAT_FAKE>" in tags or task == "<TEXT2TEXT>":
        needed.add("reply")
    if task == "<Speech2TEXTandTOKEN>":
        needed.add("reply")
    if task == "<TEXT2TEXT>":
        needed.add("question")
    if require_speech_tokens and ("<TEXT2TOKEN>" in tags or task == "<Speech2TEXTandTOKEN>"):
        needed.add("speech_token")
    if "<THINK>" in tags or "<THINKER>" in tags:
        needed.add("think")
    if "<HISTORY>" in tags:
        needed.add("history")
    needed |= set(tag_label_files(task))
    if not require_targets:
        needed -= {"reply", "think", "speech_token"}
    return needed


def _check_audio(path_spec: str, expected_fs: Optional[int]) -> Optional[str]:
    """Return a problem with one ``wav.scp`` value, or None when it is usable."""
    if path_spec.endswith("|"):
        return None  # a pipe command; format_wav_scp.sh runs it later
    path_str = path_spec
    if ":" in path_spec and path_spec.rsplit(":", 1)[1].isdigit():
        path_str = path_spec.rsplit(":", 1)[0]  # kaldi ark offset
    path = Path(path_str)  # relative paths are relative to the recipe dir (cwd)
    if not path.is_file():
        return f"audio file {path_str} does not exist"
    if path_str != path_spec:
        return None
    try:
        info = soundfile.info(str(path))
    except Exception as e:  # soundfile raises its own error type and RuntimeError
        return f"audio file {path_str} cannot be read: {e}"
    if expected_fs is not None and info.samplerate != expected_fs:
        return f"audio file {path_str} is {info.samplerate} Hz, expected {expected_fs} Hz"
    return None


def _check_tokens(value: object, vocab: int, allow_empty: bool = False) -> Optional[str]:
    """Return a problem with a speech-token sequence, or None."""
    if isinstance(value, str):
        parts = value.split()
        try:
            tokens = [int(t) for t in parts]
        except ValueError:
            return f"speech tokens must be integers separated by spaces, got {value[:40]!r}"
    else:
        if not isinstance(value, list) or not all(isinstance(t, int) for t in value):
            return "speech_token must be a list of integers"
        tokens = value
    if not tokens and not allow_empty:
        return "empty speech-token sequence"
    bad = [t for t in tokens if not 0 <= t < vocab]
    if bad:
        return f"speech token {bad[0]} out of range 0..{vocab - 1}"
    return None


def _check_history(
    value: str, vocab: int, check_audio: bool, require_speech_tokens: bool
) -> Optional[str]:
    try:
        turns = json.loads(value)
    except json.JSONDecodeError as e:
        return f"history is not valid JSON: {e}"
    if not isinstance(turns, list):
        return "history must be a JSON list of turns"
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or set(HISTORY_KEYS) - set(turn):
            return f"history turn {i} must be an object with keys {', '.join(HISTORY_KEYS)}"
        problem = _check_tokens(turn["speech_token"], vocab, not require_speech_tokens)
        if problem:
            return f"history turn {i}: {problem}"
        for key in ("user_wav", "reply_wav"):
            if check_audio and key in turn and not Path(turn[key]).is_file():
                return f"history turn {i}: audio file {turn[key]} does not exist"
    return None


def validate_data_dir(
    data_dir: Path,
    speech_token_vocab: int = DEFAULT_SPEECH_TOKEN_VOCAB,
    check_audio: bool = True,
    expected_fs: Optional[int] = None,
    require_speech_tokens: bool = True,
    require_targets: bool = True,
) -> List[Issue]:
    """Check a data dir; return every issue found (empty list: the dir is valid).

    Args:
        data_dir: the directory.
        speech_token_vocab: K, the number of speech tokens (ids must be 0..K-1).
        check_audio: open every ``wav.scp`` entry (and history audio) to check it.
        expected_fs: if given, audio must have this sample rate.
        require_speech_tokens: TTS/S2S samples need ``speech_token`` (and history turns
            non-empty token lists); False for a corpus before token extraction.
        require_targets: False for test sets without reference replies / CoT.
    """
    data_dir = Path(data_dir)
    issues: List[Issue] = []
    if not (data_dir / "task").is_file():
        return [Issue("task", None, None, "missing_file", f"{data_dir}/task is required")]
    files: Dict[str, KaldiFile] = {}
    for path in sorted(data_dir.iterdir()):
        if path.is_file() and path.name in KNOWN_UTT_FILES:
            files[path.name] = parse_kaldi_file(path, issues)
    tasks = files["task"]
    for utt, task in tasks.entries.items():
        if task not in TASK_TAGS:
            issues.append(
                Issue("task", tasks.lines[utt], utt, "unknown_task", f"unknown task tag {task!r}")
            )
    # ids in a file but not in task
    for name, parsed in files.items():
        for utt in parsed.order:
            if utt not in tasks.entries:
                issues.append(
                    Issue(name, parsed.lines[utt], utt, "id_mismatch", "id not listed in task")
                )
    # per-utterance requirements
    for utt, task in tasks.entries.items():
        for name in sorted(required_files(task, require_speech_tokens, require_targets)):
            if name not in files:
                issues.append(
                    Issue(name, None, utt, "missing_file", f"file needed by task {task!r}")
                )
            elif utt not in files[name].entries:
                issues.append(
                    Issue(
                        name,
                        None,
                        utt,
                        "id_mismatch",
                        f"no entry for this utterance (needed by task {task!r}, "
                        f"task line {tasks.lines[utt]})",
                    )
                )
    issues += _check_values(
        files, speech_token_vocab, check_audio, expected_fs, require_speech_tokens
    )
    issues += _check_spk2utt(data_dir, files.get("utt2spk"))
    return issues


def _check_values(
    files: Dict[str, KaldiFile],
    vocab: int,
    check_audio: bool,
    expected_fs: Optional[int],
    require_speech_tokens: bool,
) -> List[Issue]:
    issues: List[Issue] = []
    for name, parsed in files.items():
        for utt, value in parsed.entries.items():
            problem: Optional[str] = None
            kind = "bad_value"
            if name.endswith("wav.scp") and check_audio:
                problem, kind = _check_audio(value, expected_fs), "missing_audio"
            elif name == "speech_token":
                problem, kind = _check_tokens(value, vocab), "token_range"
            elif name == "history":
                problem = _check_history(value, vocab, check_audio, require_speech_tokens)
                kind = "bad_history"
            elif name in LABEL_FILES and not is_label(LABEL_FILES[name], value):
                problem, kind = f"{value!r} is not a {LABEL_FILES[name]} label", "bad_label"
            if problem:
                issues.append(Issue(name, parsed.lines[utt], utt, kind, problem))
    return issues


def _check_spk2utt(data_dir: Path, utt2spk: Optional[KaldiFile]) -> List[Issue]:
    path = data_dir / "spk2utt"
    if utt2spk is None or not path.is_file():
        return []
    issues: List[Issue] = []
    seen: Dict[str, str] = {}
    for lineno, line in enumerate(
        path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
    ):
        if not line.strip():
            continue
        spk, *utts = line.split()
        for utt in utts:
            seen[utt] = spk
            if utt2spk.entries.get(utt) != spk:
                issues.append(
                    Issue("spk2utt", lineno, utt, "id_mismatch", "does not agree with utt2spk")
                )
    for utt in utt2spk.entries:
        if utt not in seen:
            issues.append(Issue("spk2utt", None, utt, "id_mismatch", "missing from spk2utt"))
    return issues


def fix_data_dir(
    data_dir: Path,
    speech_token_vocab: int = DEFAULT_SPEECH_TOKEN_VOCAB,
    check_audio: bool = True,
    expected_fs: Optional[int] = None,
    require_speech_tokens: bool = True,
    require_targets: bool = True,
) -> Tuple[List[str], List[Issue]]:
    """Drop the bad utterances of a data dir in place, like Kaldi's ``fix_data_dir.sh``.

    Originals go to ``<dir>/.backup/`` (a later run: ``.backup.1/``, ``.backup.2/``...;
    a backup is never overwritten, and is complete before any file changes). Every file
    is rewritten sorted and atomically, ``spk2utt`` is regenerated, and every utterance
    named by an issue is removed from every file.
    ``require_targets=False`` keeps test utterances without a reference reply or CoT.

    Returns:
        (dropped utterance ids, issues that caused them or that sorting fixed).

    Raises:
        DataDirError: an issue that names no utterance (e.g. ``task`` is missing), which
            dropping utterances cannot fix.
    """
    data_dir = Path(data_dir)
    issues = validate_data_dir(
        data_dir, speech_token_vocab, check_audio, expected_fs, require_speech_tokens,
        require_targets,
    )
    global_issues = [i for i in issues if i.utt is None and i.kind != "format"]
    if global_issues:
        raise DataDirError(global_issues)
    bad = {i.utt for i in issues if i.utt is not None and i.kind not in ("unsorted", "duplicate")}
    files = [
        p for p in sorted(data_dir.iterdir()) if p.is_file() and p.name in KNOWN_UTT_FILES
    ]
    with atomic_dir(next_backup_dir(data_dir)) as backup:
        for path in files + [p for p in [data_dir / "spk2utt"] if p.is_file()]:
            shutil.copy2(path, backup / path.name)
    for path in files:
        parsed = parse_kaldi_file(path, [])
        kept = {u: v for u, v in parsed.entries.items() if u not in bad}
        write_kaldi_map(path, kept)
    utt2spk = data_dir / "utt2spk"
    if utt2spk.is_file():
        write_spk2utt(data_dir, read_kaldi_map(utt2spk))
    dropped = sorted(bad)
    for utt in dropped:
        logging.warning("%s: dropped utterance %s", data_dir, utt)
    return dropped, issues


def next_backup_dir(data_dir: Path) -> Path:
    """``.backup`` if it does not exist yet, else the first free ``.backup.N``."""
    candidate, n = Path(data_dir) / ".backup", 0
    while candidate.exists():
        n += 1
        candidate = Path(data_dir) / f".backup.{n}"
    return candidate


def utterance_ids(data_dir: Path) -> List[str]:
    """Sorted utterance ids of a data dir (the keys of its ``task`` file)."""
    return sorted(read_kaldi_map(Path(data_dir) / "task"))
