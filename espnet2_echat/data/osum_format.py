"""OSUM-EChat's raw / shard / combine data formats <-> Kaldi-style data dirs
(docs/data_pipeline.md#osum-formats).

An OSUM sample is ``{"key", "wav", "txt", "task", "extra"}``. What ``txt`` holds depends
on the task (docs/tasks.md#layouts, docs/data_pipeline.md#osum-formats); the mapping to data-dir
files is:

============================  ==================================================
OSUM                          data dir
============================  ==================================================
``key``                       utterance id
``wav`` / ``{key}.wav``       ``wav.scp``
``task``                      ``task``
``txt``, ASR(+X) tasks        ``text`` + label tags in task order, e.g.
                              ``hello<ADULT><FEMALE>`` -> ``text``, ``utt2age``,
                              ``utt2gender``; X-only tasks: the tags only
``txt``, S2T / S2S            ``reply_emotion`` + ``reply`` (leading tag split off)
``txt``, T2T / TTS            ``reply`` / ``text``
``txt``, STTC                 ``text`` + ``<开始回答>`` + ``reply``
``extra.question``            ``question`` (T2T); the user transcript (chat tasks)
``extra.q_txt``               ``text`` (user transcript) of non-ASR tasks
``extra.age gender q_emotion  ``utt2age utt2gender utt2emotion utt2event utt2style``
caption style``
``extra.think_str``           ``think`` (language think)
tag-think fields              ``think`` (rebuilt from the fields, docs/labels.md#tag-think)
``extra.speech_token``        ``speech_token``
``extra.a_wav_path``          ``reply_wav.scp``
``extra.speaker`` / .speaker  ``utt2spk`` (the key itself when absent)
``{key}.wav_N``, ``txt_N``,   ``history`` turn N (user audio, reply, tokens); the
``extra.speech_token_N``      plugin also keeps ``q_txt_N`` (user text) and
                              ``a_wav_path_N`` (reply audio) in ``extra``
============================  ==================================================

Readers never stop at a bad sample: each problem (bad JSON line, unknown label, corrupt
or truncated tar member) becomes an error naming the file and line, or tar and member,
and the other samples are still converted.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import soundfile

from espnet2_echat.data.audio import load_audio, write_pcm16
from espnet2_echat.data.cot import build_tag_think, parse_tag_think
from espnet2_echat.data.datadir import load_data_dir, validate_data_dir, write_data_dir
from espnet2_echat.data.labels import REPLY_EMOTION_LABELS, normalize_label, split_leading_tag
from espnet2_echat.data.task_registry import (
    LABEL_BY_KIND,
    LABEL_FILES,
    OSUM_LABEL_KEYS,
    STTC_SEPARATOR,
    UNDERSTANDING_TAGS,
    tag_label_files,
)
from espnet2_echat.progress import Tally
from espnet2_echat.safety.names import name_problem

AUDIO_EXTENSIONS = ("wav", "flac", "mp3", "m4a", "ogg", "opus", "wma")
UTTS_PER_SHARD = 1000
_RE_TRAILING_TAGS = re.compile(r"((?:\s*<[^<>]*>)+)\s*$")
_RE_TAG = re.compile(r"<[^<>]*>")


@dataclass
class OsumSample:
    """One OSUM sample; audio paths are local files."""

    key: str
    txt: str
    task: str
    extra: Dict[str, object] = field(default_factory=dict)
    wav: Optional[str] = None
    history_wavs: Dict[int, str] = field(default_factory=dict)

    def to_json(self) -> Dict[str, object]:
        """The raw-format dict (``wav`` omitted for text-only samples; history audio
        as ``extra.wav_N``)."""
        out: Dict[str, object] = {"key": self.key}
        if self.wav is not None:
            out["wav"] = self.wav
        extra = dict(self.extra)
        extra.update({f"wav_{n}": path for n, path in self.history_wavs.items()})
        out.update({"txt": self.txt, "task": self.task, "extra": extra})
        return out


class SampleError(ValueError):
    """A sample that cannot be converted."""


# ------------------------------------------------------------ record <-> sample


def _is_understanding(task: str) -> bool:
    return task in UNDERSTANDING_TAGS


def _label_tags(task: str) -> List[str]:
    """Label files whose values follow the transcript in an understanding txt."""
    return list(tag_label_files(task))


def record_to_sample(utt: str, rec: Dict[str, str]) -> OsumSample:
    """Turn one utterance's data-dir values (``{file: value}``) into an OSUM sample."""
    task = rec["task"]
    tags = task.split()
    extra: Dict[str, object] = {}
    text = rec.get("text")
    for key, name in OSUM_LABEL_KEYS.items():
        if name in rec:
            extra[key] = rec[name]
    if "utt2spk" in rec and rec["utt2spk"] != utt:
        extra["speaker"] = rec["utt2spk"]
    if "utt2lang" in rec:
        extra["lang"] = rec["utt2lang"]
    if "<TRANSCRIBE>" in tags and "<S2TCHAT>" in tags:
        txt = f"{text}{STTC_SEPARATOR}{rec['reply']}"
    elif _is_understanding(task):
        labels = "".join(rec[name] for name in _label_tags(task))
        txt = (text + labels) if "<TRANSCRIBE>" in tags else labels
        if "<TRANSCRIBE>" not in tags and text is not None:
            extra["q_txt"] = text
    elif tags[0] == "<TEXT2TOKEN>":
        txt = rec["text"]
    elif task == "<TEXT2TEXT>":
        txt = rec["reply"]
        extra["question"] = rec["question"]
    else:  # S2T / S2S chat
        txt = rec.get("reply_emotion", "") + rec["reply"]
        if text is not None:
            extra["question"] = text
            extra["q_txt"] = text
    if "think" in rec:
        _think_to_extra(rec["think"], rec.get("reply_emotion"), extra)
    if "speech_token" in rec:
        extra["speech_token"] = [int(t) for t in rec["speech_token"].split()]
    if "reply_wav.scp" in rec:
        extra["a_wav_path"] = rec["reply_wav.scp"]
    history_wavs: Dict[int, str] = {}
    if "history" in rec:
        for n, turn in enumerate(json.loads(rec["history"]), start=1):
            history_wavs[n] = turn["user_wav"]
            extra[f"txt_{n}"] = turn["reply"]
            extra[f"q_txt_{n}"] = turn["user_text"]
            extra[f"speech_token_{n}"] = list(turn["speech_token"])
            if "reply_wav" in turn:
                extra[f"a_wav_path_{n}"] = turn["reply_wav"]
    return OsumSample(utt, txt, task, extra, rec.get("wav.scp"), history_wavs)


def _think_to_extra(think: str, reply_emotion: Optional[str], extra: Dict[str, object]) -> None:
    """A tag-think CoT goes to the fields the reference rebuilds it from, else think_str."""
    fields = parse_tag_think(think)
    values = [fields[k] for k in ("q_txt", "age", "gender", "emotion", "event", "reply_emotion")]
    if all(v is not None for v in values) and build_tag_think(*values) == think:
        extra["q_txt"] = fields["q_txt"]
        for key, value in zip(("age", "gender", "q_emotion", "caption"), values[1:5]):
            extra[key] = value
        if reply_emotion is None:
            extra["reply_emotion"] = fields["reply_emotion"]
    else:
        extra["think_str"] = think


def _label(name: str, value: object) -> str:
    try:
        return normalize_label(LABEL_FILES[name], str(value))
    except ValueError as e:
        raise SampleError(f"{name}: {e}") from None


def sample_to_record(sample: OsumSample) -> Dict[str, str]:
    """Turn an OSUM sample into data-dir values ``{file: value}``.

    Raises:
        SampleError: a label outside its set, a missing field the task needs, a txt
            without the labels its task names.
    """
    task, txt, extra = sample.task or "<TRANSCRIBE>", sample.txt, sample.extra
    tags = task.split()
    rec: Dict[str, str] = {"task": task}
    if sample.wav:
        rec["wav.scp"] = sample.wav
        rec["utt2spk"] = str(extra.get("speaker", sample.key))
    for key, name in OSUM_LABEL_KEYS.items():
        if extra.get(key) not in (None, "", "none", "<&&>"):
            rec[name] = _label(name, extra[key])
    if extra.get("lang") not in (None, "", "none"):
        rec["utt2lang"] = str(extra["lang"])
    q_txt = extra.get("q_txt") or extra.get("question")
    if "<TRANSCRIBE>" in tags and "<S2TCHAT>" in tags:
        parts = txt.split(STTC_SEPARATOR)
        if len(parts) != 2:
            raise SampleError(f"txt of task {task} must hold exactly one {STTC_SEPARATOR}")
        rec["text"], rec["reply"] = parts
    elif _is_understanding(task):
        names = _label_tags(task)
        body = txt
        if names:
            match = _RE_TRAILING_TAGS.search(txt)
            found = _RE_TAG.findall(match.group(1)) if match else []
            if len(found) < len(names):
                raise SampleError(f"txt {txt!r} lacks the labels of task {task}")
            for name, value in zip(names, found[-len(names) :]):
                rec[name] = _label(name, value)
            body = txt[: match.start()]
            for extra_tag in found[: len(found) - len(names)]:
                body += extra_tag
        if "<TRANSCRIBE>" in tags:
            rec["text"] = body.strip()
        elif q_txt:
            rec["text"] = str(q_txt)
    elif tags[0] == "<TEXT2TOKEN>":
        rec["text"] = txt
    elif task == "<TEXT2TEXT>":
        rec["reply"] = txt
        if not extra.get("question"):
            raise SampleError("T2T sample without extra.question")
        rec["question"] = str(extra["question"])
    else:
        tag, rest = split_leading_tag(txt)
        if tag in REPLY_EMOTION_LABELS:
            rec["reply_emotion"], rec["reply"] = tag, rest
        else:
            rec["reply"] = txt
        if q_txt:
            rec["text"] = str(q_txt)
    if extra.get("reply_emotion") and "reply_emotion" not in rec:
        rec["reply_emotion"] = _label("reply_emotion", extra["reply_emotion"])
    think = _think_from_extra(task, extra, rec, q_txt)
    if think is not None:
        rec["think"] = think
    if extra.get("speech_token"):
        rec["speech_token"] = " ".join(str(int(t)) for t in extra["speech_token"])
    if extra.get("a_wav_path"):
        rec["reply_wav.scp"] = str(extra["a_wav_path"])
    if sample.history_wavs:
        rec["history"] = json.dumps(_history(sample), ensure_ascii=False)
    return rec


def _think_from_extra(
    task: str, extra: Dict[str, object], rec: Dict[str, str], q_txt: object
) -> Optional[str]:
    if extra.get("think_str"):
        return str(extra["think_str"])
    tags = task.split()
    if "<THINK>" not in tags and "<THINKER>" not in tags:
        return None
    if not q_txt:
        raise SampleError(f"task {task} needs extra.think_str or extra.q_txt/question")
    kinds = ("age", "gender", "emotion", "event", "reply_emotion")  # build_tag_think's args
    return build_tag_think(str(q_txt), **{k: rec.get(LABEL_BY_KIND[k].file) for k in kinds})


def _history(sample: OsumSample) -> List[Dict[str, object]]:
    turns = []
    for n in sorted(sample.history_wavs):
        extra = sample.extra
        if f"txt_{n}" not in extra:
            raise SampleError(f"history turn {n} has audio but no txt_{n}")
        turn: Dict[str, object] = {
            "user_wav": sample.history_wavs[n],
            "user_text": str(extra.get(f"q_txt_{n}", "")),
            "reply": str(extra[f"txt_{n}"]),
            "speech_token": [int(t) for t in extra.get(f"speech_token_{n}", [])],
        }
        if extra.get(f"a_wav_path_{n}"):
            turn["reply_wav"] = str(extra[f"a_wav_path_{n}"])
        turns.append(turn)
    return turns


# ------------------------------------------------------------ readers


def _parse_extra(value: object) -> Dict[str, object]:
    if value is None:
        return {}
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    if not isinstance(value, dict):
        raise SampleError("extra must be a dict or a JSON object string")
    return value


def read_raw(
    list_path: Path, errors: List[str], wav_root: Optional[Path] = None
) -> Iterator[OsumSample]:
    """Samples of a raw JSONL list; relative wav paths resolve against ``wav_root``
    (default: the list's folder). ``start``/``end`` crops are not supported (error)."""
    list_path = Path(list_path)
    root = Path(wav_root) if wav_root is not None else list_path.parent
    with open(list_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                for key in ("key", "txt"):
                    if key not in obj:
                        raise SampleError(f"missing required key {key!r}")
                if "start" in obj or "end" in obj:
                    raise SampleError("start/end crops are not supported; cut the audio first")
                wav = obj.get("wav") or None
                if wav is not None and not Path(wav).is_absolute():
                    wav = str((root / wav).resolve())
                extra = _parse_extra(obj.get("extra"))
                history = {
                    int(k[4:]): _resolve(str(v), root)
                    for k, v in extra.items()
                    if re.fullmatch(r"wav_\d+", k)
                }
                yield OsumSample(
                    str(obj["key"]),
                    str(obj["txt"]),
                    str(obj.get("task", "<TRANSCRIBE>")),
                    extra,
                    wav,
                    history,
                )
            except (json.JSONDecodeError, SampleError, ValueError, TypeError) as e:
                errors.append(f"{list_path}:{lineno}: {e}")


def _resolve(path: str, root: Path) -> str:
    return path if Path(path).is_absolute() else str((root / path).resolve())


def _split_member(name: str) -> Tuple[str, str]:
    base = name.rsplit("/", 1)[-1]
    pos = base.rfind(".")
    if pos <= 0:
        return base, ""
    return base[:pos], base[pos + 1 :]


def read_tar_groups(tar_path: Path, errors: List[str]) -> Iterator[Tuple[str, Dict[str, bytes]]]:
    """Yield ``(key, {suffix: bytes})`` for each sample of a WeNet-style tar.

    Members of one sample are consecutive and share the ``{key}.`` prefix. A truncated
    or corrupt member drops its sample with an error naming the tar and the member; the
    reader skips over corrupt blocks (``ignore_zeros``) to recover later samples.
    """
    tar_path = Path(tar_path)
    size = tar_path.stat().st_size
    current_key: Optional[str] = None
    parts: Dict[str, bytes] = {}
    bad_key: Optional[str] = None
    expected_offset = 0
    last_member = "(start of archive)"
    try:
        tar = tarfile.open(tar_path, mode="r:", ignore_zeros=True)
    except (tarfile.TarError, OSError) as e:
        errors.append(f"{tar_path}: cannot open tar: {e}")
        return
    with tar:
        while True:
            try:
                member = tar.next()
            except (tarfile.TarError, OSError, EOFError) as e:
                errors.append(f"{tar_path}: corrupt header after member {last_member}: {e}")
                break
            if member is None:
                break
            if member.offset > expected_offset and _has_data(
                tar_path, expected_offset, member.offset
            ):
                errors.append(
                    f"{tar_path}: corrupt data between member {last_member} and member "
                    f"{member.name} (bytes {expected_offset}..{member.offset} skipped)"
                )
                bad_key = _split_member(last_member)[0]
            expected_offset = member.offset_data + ((member.size + 511) // 512) * 512
            last_member = member.name
            if not member.isfile():
                continue
            key, suffix = _split_member(member.name)
            if key != current_key:
                if current_key is not None and current_key != bad_key:
                    yield current_key, parts
                current_key, parts = key, {}
            try:
                if member.offset_data + member.size > size:
                    raise tarfile.ReadError("unexpected end of data (tar is truncated)")
                handle = tar.extractfile(member)
                parts[suffix] = handle.read() if handle else b""
            except (tarfile.TarError, OSError, EOFError) as e:
                errors.append(f"{tar_path}: member {member.name}: {e}")
                bad_key = key
    if current_key is None or current_key == bad_key:
        return
    if expected_offset + 1024 > size:
        # no end-of-archive marker: the last sample may lack members, drop it
        errors.append(
            f"{tar_path}: truncated after member {last_member} (no end-of-archive "
            f"marker); sample {current_key} dropped"
        )
        return
    yield current_key, parts


def _has_data(tar_path: Path, start: int, end: int) -> bool:
    """True when the bytes start..end of a file are not all zero (skipped padding)."""
    with open(tar_path, "rb") as f:
        f.seek(start)
        return any(f.read(end - start))


def _group_to_sample(
    key: str, parts: Dict[str, bytes], audio_dir: Path, meta: Optional[Dict[str, object]]
) -> OsumSample:
    """Build a sample from tar members (shard) or from JSONL metadata + tar audio (combine)."""
    if meta is None:
        if "txt" not in parts:
            raise SampleError(f"missing member {key}.txt")
        txt = parts["txt"].decode("utf-8").strip()
        task = parts["task"].decode("utf-8").strip() if "task" in parts else "<TRANSCRIBE>"
        extra = _parse_extra(parts["extra"].decode("utf-8")) if "extra" in parts else {}
        speaker = parts.get("speaker", b"none").decode("utf-8").strip()
        if speaker not in ("", "none") and "speaker" not in extra:
            extra["speaker"] = speaker
        lang = parts.get("lang", b"none").decode("utf-8").strip()
        if lang not in ("", "none") and "lang" not in extra:
            extra["lang"] = lang
    else:
        for field_name in ("txt", "task", "extra"):
            if field_name not in meta:
                raise SampleError(f"combine metadata lacks {field_name!r}")
        txt, task, extra = str(meta["txt"]), str(meta["task"]), _parse_extra(meta["extra"])
    problem = name_problem(key)
    if problem:
        raise SampleError(f"sample key {key!r} {problem}; expected a plain name (it is the utterance id)")
    audio_dir.mkdir(parents=True, exist_ok=True)
    wav = None
    history: Dict[int, str] = {}
    for suffix, data in parts.items():
        match = re.fullmatch(r"(\w+?)(?:_(\d+))?", suffix)
        if not match or match.group(1) not in AUDIO_EXTENSIONS:
            continue
        name = (
            f"{key}.{suffix}"
            if match.group(2) is None
            else f"{key}.hist{match.group(2)}.{match.group(1)}"
        )
        path = audio_dir / name
        path.write_bytes(data)
        try:
            soundfile.info(str(path))
        except Exception as e:  # soundfile raises its own error type
            raise SampleError(f"member {key}.{suffix} is not readable audio: {e}") from None
        if match.group(2) is None:
            wav = str(path.resolve())
        else:
            history[int(match.group(2))] = str(path.resolve())
            if f"txt_{match.group(2)}" in parts and f"txt_{match.group(2)}" not in extra:
                extra[f"txt_{match.group(2)}"] = parts[f"txt_{match.group(2)}"].decode("utf-8")
    return OsumSample(key, txt, task, extra, wav, history)


def read_shard_list(list_path: Path, audio_dir: Path, errors: List[str]) -> Iterator[OsumSample]:
    """Samples of the tars named in a shard or combine list.

    Accepted lines: a tar path (``shards_list.txt``), ``-|TAR`` or ``JSONL|TAR`` (the
    reference's internal manifest, docs/data_pipeline.md#osum-formats). A file named
    ``combines_list.txt`` lists JSONL files whose tars sit in the folder named by
    ``combines_tar_root.txt``.
    """
    list_path = Path(list_path)
    for meta_path, tar_path in _manifest(list_path):
        metas = _read_combine_jsonl(meta_path, errors) if meta_path else None
        sub_dir = audio_dir / tar_path.stem
        for key, parts in read_tar_groups(tar_path, errors):
            try:
                meta = None
                if metas is not None:
                    if key not in metas:
                        raise SampleError(f"no metadata line for key {key} in {meta_path}")
                    meta = metas[key]
                yield _group_to_sample(key, parts, sub_dir, meta)
            except (SampleError, UnicodeDecodeError, json.JSONDecodeError) as e:
                errors.append(f"{tar_path}: sample {key}: {e}")


def _manifest(list_path: Path) -> List[Tuple[Optional[Path], Path]]:
    base = list_path.parent
    lines = [ln.strip() for ln in list_path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if list_path.name == "combines_list.txt":
        root_file = base / "combines_tar_root.txt"
        if not root_file.is_file():
            raise FileNotFoundError(f"{root_file} (tar folder of {list_path}) does not exist")
        tar_root = Path(root_file.read_text(encoding="utf-8").strip())
        tar_root = tar_root if tar_root.is_absolute() else base / tar_root
        return [(Path(_resolve(ln, base)), tar_root / f"{Path(ln).stem}.tar") for ln in lines]
    out: List[Tuple[Optional[Path], Path]] = []
    for ln in lines:
        if "|" in ln:
            meta, tar = ln.split("|", 1)
            out.append(
                (None if meta == "-" else Path(_resolve(meta, base)), Path(_resolve(tar, base)))
            )
        else:
            out.append((None, Path(_resolve(ln, base))))
    return out


def _read_combine_jsonl(path: Path, errors: List[str]) -> Dict[str, Dict[str, object]]:
    metas: Dict[str, Dict[str, object]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                metas[str(obj["key"])] = obj
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                errors.append(f"{path}:{lineno}: {e}")
    return metas


def osum_to_datadir(
    data_type: str,
    input_path: Path,
    out_dir: Path,
    wav_root: Optional[Path] = None,
    tally: Optional[Tally] = None,
) -> List[str]:
    """Convert an OSUM raw list or shard/combine list into a data dir.

    Audio stays where it is for raw lists; tar audio is extracted under
    ``out_dir/audio/``. Returns the errors (each names its file and line, or tar and
    member); every sample without an error is converted. ``tally`` (a progress bar and
    counts) counts each sample as done or failed (a line or tar member that could not be
    read counts as one failed sample); the bar knows its total for raw lists only.
    """
    tally = Tally() if tally is None else tally
    out_dir = Path(out_dir)
    errors: List[str] = []
    if data_type == "raw":
        samples = read_raw(Path(input_path), errors, wav_root)
        with open(input_path, encoding="utf-8") as f:
            total: Optional[int] = sum(1 for line in f if line.strip())
    elif data_type == "shard":
        samples = read_shard_list(Path(input_path), out_dir / "audio", errors)
        total = None
    else:
        raise ValueError(f"data_type must be raw or shard, got {data_type!r}")
    tally.begin(total, f"converting {input_path}", unit="sample")
    utts: Dict[str, Dict[str, str]] = {}
    for sample in samples:
        try:
            if sample.key in utts:
                raise SampleError("duplicate key")
            problem = name_problem(sample.key)
            if problem:
                raise SampleError(f"key {problem}; expected a plain name (it is the utterance id)")
            utts[sample.key] = sample_to_record(sample)
            tally.add("done")
        except (SampleError, KeyError, ValueError, TypeError) as e:
            errors.append(f"{input_path}: sample {sample.key}: {e}")
    tally.add("failed", len(errors))  # unreadable lines/members and unconvertible samples
    tally.end()
    write_data_dir(out_dir, utts)
    problems = validate_data_dir(out_dir, require_speech_tokens=False)
    errors += [f"{out_dir}/{p}" for p in problems]
    logging.info("%s: %d samples converted, %d errors", out_dir, len(utts), len(errors))
    return errors


# ------------------------------------------------------------ writers


def _wav_bytes(path: str) -> bytes:
    """16 kHz 16-bit mono WAV bytes of an audio file (resampled at packing,
    docs/data_pipeline.md#osum-formats)."""
    buf = io.BytesIO()
    write_pcm16(buf, load_audio(path, 16000), 16000)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _members(s: OsumSample, meta_only: bool) -> List[Tuple[str, bytes]]:
    """The tar members of one sample (audio read here, so a bad file fails only its sample)."""
    members: List[Tuple[str, bytes]] = []
    extra = dict(s.extra)
    duration = extra.pop("duration", 0)
    if not meta_only:
        members += [
            (f"{s.key}.txt", s.txt.encode("utf-8")),
            (f"{s.key}.task", s.task.encode("utf-8")),
        ]
        for name, key in (
            ("lang", "lang"), ("speaker", "speaker"), ("emotion", "q_emotion"), ("gender", "gender")
        ):
            members.append((f"{s.key}.{name}", str(extra.get(key, "none")).encode("utf-8")))
        members.append((f"{s.key}.duration", str(duration).encode("utf-8")))
        members.append((f"{s.key}.extra", json.dumps(extra, ensure_ascii=False).encode("utf-8")))
    if s.wav:
        members.append((f"{s.key}.wav", _wav_bytes(s.wav)))
    elif meta_only:
        # a combine reader only sees keys present in the tar; a text-only sample
        # keeps its .txt there (the reference gives it dummy audio at load time)
        members.append((f"{s.key}.txt", s.txt.encode("utf-8")))
    for n, path in sorted(s.history_wavs.items()):
        members.append((f"{s.key}.wav_{n}", _wav_bytes(path)))
        if not meta_only:
            members.append((f"{s.key}.txt_{n}", str(s.extra[f"txt_{n}"]).encode("utf-8")))
    return members


def _write_tar(
    tar_path: Path,
    samples: Sequence[OsumSample],
    meta_only: bool,
    fail: Callable[[OsumSample, Exception], None],
) -> List[OsumSample]:
    """Write the samples' members to ``tar_path``; return those written (``fail`` gets the
    others)."""
    written = []
    with tarfile.open(tar_path, "w") as tar:
        for s in samples:
            try:
                members = _members(s, meta_only)
            except (OSError, RuntimeError, ValueError) as e:  # unreadable audio
                fail(s, e)
                continue
            for name, data in members:
                _add(tar, name, data)
            written.append(s)
    (tar_path.parent / f"{tar_path.name}.finished").touch()
    return written


def datadir_to_osum(
    data_dirs: Sequence[Path],
    data_type: str,
    out_dir: Path,
    utts_per_shard: int = UTTS_PER_SHARD,
    errors: Optional[List[str]] = None,
    tally: Optional[Tally] = None,
) -> Path:
    """Write data dirs as an OSUM raw list, shards or combine lists; return the list file.

    * ``raw``: ``out_dir/data.list`` (JSONL, audio paths as in ``wav.scp``).
    * ``shard``: ``out_dir/shard_%09d.tar`` (+ ``.finished``) and ``shards_list.txt``.
    * ``combine``: ``out_dir/tars/shard_%09d.tar`` (audio only), per-tar JSONL
      ``out_dir/shard_%09d.list``, ``combines_list.txt``, ``combines_tar_root.txt``.

    With ``errors`` given, an utterance that cannot be converted (its labels, or its audio
    when packing tars) is recorded there (naming dir and utterance) and left out, and the
    others are written; without it the first such utterance raises. ``tally`` (a progress
    bar and counts) counts each utterance as done or failed.
    """
    tally = Tally() if tally is None else tally
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if data_type not in ("raw", "shard", "combine"):
        raise ValueError(f"data_type must be raw, shard or combine, got {data_type!r}")
    origin: Dict[int, Path] = {}

    def fail(where: Path, utt: str, e: Exception) -> None:
        if errors is None:
            raise e
        errors.append(f"{where}: utt {utt}: {' '.join(str(e).split())}")
        tally.add("failed")

    samples: List[OsumSample] = []
    for data_dir in data_dirs:
        files = load_data_dir(data_dir, require_speech_tokens=False)
        for utt in sorted(files["task"]):
            rec = {name: values[utt] for name, values in files.items() if utt in values}
            try:
                samples.append(record_to_sample(utt, rec))
            except (SampleError, KeyError, ValueError, TypeError) as e:
                fail(Path(data_dir), utt, e)
                continue
            origin[id(samples[-1])] = Path(data_dir)
    tally.begin(len(samples), f"writing {data_type} to {out_dir}")
    if data_type == "raw":
        path = out_dir / "data.list"
        with open(path, "w", encoding="utf-8") as f:
            for s in samples:
                f.write(json.dumps(s.to_json(), ensure_ascii=False) + "\n")
                tally.add("done")
        tally.end()
        return path

    def packed(tar_path: Path, chunk: Sequence[OsumSample], meta_only: bool) -> List[OsumSample]:
        written = _write_tar(
            tar_path, chunk, meta_only, lambda s, e: fail(origin[id(s)], s.key, e)
        )
        tally.add("done", len(written))
        return written

    chunks = [samples[i : i + utts_per_shard] for i in range(0, len(samples), utts_per_shard)]
    if data_type == "shard":
        tars = []
        for i, chunk in enumerate(chunks):
            tar_path = out_dir / f"shard_{i:09d}.tar"
            packed(tar_path, chunk, meta_only=False)
            tars.append(str(tar_path.resolve()))
        path = out_dir / "shards_list.txt"
        path.write_text("".join(t + "\n" for t in tars), encoding="utf-8")
        tally.end()
        return path
    tar_dir = out_dir / "tars"
    tar_dir.mkdir(exist_ok=True)
    lists = []
    for i, chunk in enumerate(chunks):
        name = f"shard_{i:09d}"
        written = packed(tar_dir / f"{name}.tar", chunk, meta_only=True)
        with open(out_dir / f"{name}.list", "w", encoding="utf-8") as f:
            for s in written:
                obj = s.to_json()
                obj["wav"] = "only-meta"
                obj["tar_path_key"] = str((tar_dir / f"{name}.tar").resolve())
                f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        lists.append(str((out_dir / f"{name}.list").resolve()))
    (out_dir / "combines_tar_root.txt").write_text(str(tar_dir.resolve()) + "\n", encoding="utf-8")
    path = out_dir / "combines_list.txt"
    path.write_text("".join(p + "\n" for p in lists), encoding="utf-8")
    tally.end()
    return path
