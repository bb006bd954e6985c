"""Decode a Kaldi-style data dir into Kaldi-style output files (docs/decoding.md, docs/data_dir.md).

Inputs are named ESPnet-style, ``path,name,type``: ``speech`` (``sound``: a ``wav.scp``),
``text`` (TTS text), ``question`` (T2T user text) and ``history`` (JSON turns), each
``text`` type. Outputs, keyed by utterance id and sorted: ``text``, ``token_int``, and
``think`` (think modes), ``speech_token`` (S2S, TTS), ``wav.scp`` + ``wav/*.wav`` (with a
token2wav model), and ``errors`` (``uttid reason`` of each utterance that failed).
Finished utterances (already in ``text``) are skipped on a re-run; a run killed half-way
and re-run ends with each utterance exactly once.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import soundfile
from espnet2.fileio.read_text import read_2columns_text
from espnet2.fileio.sound_scp import SoundScpReader

from espnet2_echat.data.task_registry import DECODE_FILES, SPEECH_TASKS, check_task
from espnet2_echat.inference.conversation import Turn
from espnet2_echat.job_list import read_job_list
from espnet2_echat.progress import Tally
from espnet2_echat.inference.speech2response import Request, Response, Speech2Response
from espnet2_echat.safety.atomic import atomic_write, atomic_write_text
from espnet2_echat.safety.names import child_path, name_problem
from espnet2_echat.train.devices import device_for_ngpu

INPUT_NAMES = ("speech", "text", "question", "history")


@dataclass
class DecodeSummary:
    """Where a decode went and how many utterances failed (listed in ``errors``)."""

    output_dir: Path
    num_utts: int
    num_errors: int

    @classmethod
    def read(cls, out: Path) -> "DecodeSummary":
        """Count the decoded (``text``) and failed (``errors``) utterances of a decode dir."""
        done, failed = len(_read_entries(out / "text")), len(_read_entries(out / "errors"))
        return cls(out, done + failed, failed)

    def line(self) -> str:
        """The one-line summary printed at the end of a run."""
        ok = self.num_utts - self.num_errors
        tail = f"; see {self.output_dir / 'errors'}" if self.num_errors else ""
        return f"{self.output_dir}: {ok} of {self.num_utts} utterances decoded, {self.num_errors} failed{tail}"


def parse_data_triplets(triplets: Sequence[str]) -> Dict[str, Tuple[str, str]]:
    """``["dump/wav.scp,speech,sound", ...]`` -> ``{"speech": (path, "sound"), ...}``."""
    inputs = {}
    for item in triplets:
        parts = item.split(",")
        if len(parts) != 3:
            raise ValueError(f"--data_path_and_name_and_type {item!r}: expected PATH,NAME,TYPE")
        path, name, kind = parts
        if name not in INPUT_NAMES:
            raise ValueError(
                f"--data_path_and_name_and_type {item!r}: name must be one of {INPUT_NAMES}"
            )
        expected = "sound" if name == "speech" else "text"
        if kind != expected:
            raise ValueError(
                f"--data_path_and_name_and_type {item!r}: {name} must have type {expected}"
            )
        inputs[name] = (path, kind)
    return inputs


def _history(s2r: Speech2Response, value: str, source: str) -> List[Turn]:
    """Turns of a data dir's ``history`` entry (JSON list, docs/data_dir.md)."""
    try:
        records = json.loads(value)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source}: history is not valid JSON ({e})") from e
    turns = []
    for k, rec in enumerate(records):
        audio = None
        if rec.get("user_wav"):
            wav, fs = soundfile.read(rec["user_wav"], dtype="float32")
            audio = s2r.encode_audio([s2r.prepare_waveform(wav, fs, k)])[0]
        reply = s2r.layout.text(rec.get("reply", ""))
        turns.append(Turn(reply, list(rec.get("speech_token", [])), audio, rec.get("user_text")))
    return turns


def _read_request(s2r, key, main, speech, texts, inputs) -> Request:
    """The request of one utterance; errors name the input file and the utterance."""
    request = Request()
    if main == "speech":
        if key not in speech:
            raise KeyError(f"{inputs['speech'][0]}: no utterance {key}")
        try:
            fs, wav = speech[key]
        except Exception as e:  # soundfile/kaldiio raise their own types
            raise ValueError(f"{inputs['speech'][0]}: utterance {key}: cannot read audio ({e})") from e
        request.speech, request.fs = wav, fs
    else:
        if key not in texts[main]:
            raise KeyError(f"{inputs[main][0]}: no utterance {key}")
        request.text = texts[main][key]
    if "history" in texts and key in texts["history"]:
        source = f"{inputs['history'][0]}: {key}"
        request.history = _history(s2r, texts["history"][key], source)
    return request


def _decode_batch(s2r, keys, requests, task, think, prompt, overrides, errors):
    """Decode a batch; when it fails, decode its requests one by one so that only the bad
    ones are lost (each goes to ``errors`` with its reason)."""
    try:
        return list(zip(keys, s2r.batch(requests, task, think, prompt=prompt, **overrides)))
    except (ValueError, RuntimeError, KeyError, OSError) as e:
        if len(requests) == 1:
            errors[keys[0]] = _reason(e)
            return []
    done = []
    for key, request in zip(keys, requests):
        done += _decode_batch(s2r, [key], [request], task, think, prompt, overrides, errors)
    return done


def _input_length(key: str, main: str, speech, texts) -> int:
    """A cheap measure of an utterance's input length for batching: audio frames from the
    file header (0 for a pipe or an unreadable entry, reported when it is decoded), or the
    text's characters."""
    if main != "speech":
        return len(texts[main].get(key, ""))
    path = speech.data.get(key, "") if speech is not None else ""
    try:
        return soundfile.info(path).frames if Path(path).is_file() else 0
    except (RuntimeError, soundfile.LibsndfileError):
        return 0


def decode_data_dir(
    s2r: Speech2Response,
    data_path_and_name_and_type: Sequence[str],
    output_dir: str,
    task: str,
    think: str = "none",
    prompt: Optional[str] = None,
    key_file: Optional[str] = None,
    batch_size: int = 1,
    tally: Optional[Tally] = None,
    **overrides,
) -> Path:
    """Decode every utterance of ``key_file`` (default: the first input's keys).

    With ``batch_size > 1`` utterances are decoded longest first, so a batch holds similar
    lengths; the output files are sorted by utterance id whatever the order. A bad
    utterance (missing or unreadable audio, bad history, refused by the model) does
    not stop the run or lose the good ones of its batch: it is written to ``errors``
    (``uttid reason``) and retried on a re-run. The dir records task, think and model
    (``decode_info.json``); a re-run with other settings is refused. ``tally`` (a
    progress bar and the done/skipped/failed counts of the run's summary line) is made
    here when not given.
    """
    inputs = parse_data_triplets(data_path_and_name_and_type)
    if batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {batch_size}")
    main = check_task(task, think).input.name
    if main not in inputs:
        raise ValueError(f"task {task!r} needs a {main!r} input in --data_path_and_name_and_type")
    speech = SoundScpReader(inputs["speech"][0], dtype="float32") if "speech" in inputs else None
    texts = {
        n: read_2columns_text(inputs[n][0]) for n in ("text", "question", "history") if n in inputs
    }
    if key_file:
        keys = list(read_2columns_text(key_file))
    else:
        keys = list(speech.keys()) if main == "speech" else list(texts[main])
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    check_decode_info(out, dict(task=task, think=think, prompt=prompt, model=s2r.model_file))
    done = repair_outputs(out)
    todo = [k for k in keys if k not in done]
    logging.info(
        f"{len(keys)} utterances, {len(done & set(keys))} already decoded, {len(todo)} to go"
    )
    errors: Dict[str, str] = {}
    for key in todo:  # ids become file names: refuse unsafe ones before decoding anything
        problem = name_problem(key)
        if problem:
            errors[key] = f"utterance id {problem}; expected a plain name"
    todo = [k for k in todo if k not in errors]
    tally = Tally() if tally is None else tally
    tally.add("skipped", len(done & set(keys)))
    tally.add("failed", len(errors))
    if batch_size > 1:  # similar lengths share a batch: less padding, no long row idling
        lengths = {k: _input_length(k, main, speech, texts) for k in todo}
        todo.sort(key=lambda k: -lengths[k])  # stable: equal lengths keep their order
    tally.begin(len(todo), f"decoding {task}")
    for start in range(0, len(todo), batch_size):
        chunk, requests = [], []
        for key in todo[start : start + batch_size]:
            try:
                requests.append(_read_request(s2r, key, main, speech, texts, inputs))
                chunk.append(key)
            except (ValueError, KeyError, OSError, RuntimeError) as e:
                errors[key] = _reason(e)
        decoded = []
        if chunk:
            decoded = _decode_batch(s2r, chunk, requests, task, think, prompt, overrides, errors)
        if decoded:
            _append(out, [k for k, _ in decoded], [r for _, r in decoded], task, think)
        for key in todo[start : start + batch_size]:
            if key in errors:
                logging.error(f"{key}: {errors[key]}")
        tally.add("done", len(decoded))
        tally.add("failed", len(todo[start : start + batch_size]) - len(decoded))
    tally.end()
    _sort_outputs(out)
    atomic_write_text(
        out / "errors", "".join(f"{k} {_one_line(v)}\n" for k, v in sorted(errors.items()))
    )
    return out


@dataclass(frozen=True)
class DecodeJob:
    """One data dir to decode: where to, as which task and think mode, which utterances
    (``key_file``; None: all) and from which inputs (``PATH,NAME,TYPE`` each)."""

    output_dir: str
    task: str
    think: str
    key_file: Optional[str]
    data_path_and_name_and_type: Tuple[str, ...]


def read_decode_jobs(path: str) -> List[DecodeJob]:
    """The decode jobs of a ``--jobs`` file (:mod:`espnet2_echat.job_list`), one a line:
    ``OUTPUT_DIR TASK THINK KEY_FILE PATH,NAME,TYPE [PATH,NAME,TYPE ...]`` (``KEY_FILE``
    ``-``: every utterance)."""

    def make(fields: List[str]) -> DecodeJob:
        out, task, think, keys, *data = fields
        main = check_task(task, think).input.name
        if main not in parse_data_triplets(data):
            raise ValueError(f"task {task!r} needs a {main!r} input")
        return DecodeJob(out, task, think, None if keys == "-" else keys, tuple(data))

    fields = ("OUTPUT_DIR", "TASK", "THINK", "KEY_FILE", "PATH,NAME,TYPE")
    return read_job_list(path, fields, make, more="[PATH,NAME,TYPE ...]")


def inference(
    output_dir: Optional[str] = None,
    data_path_and_name_and_type: Sequence[str] = (),
    task: Optional[str] = None,
    think: str = "none",
    prompt: Optional[str] = None,
    key_file: Optional[str] = None,
    batch_size: int = 1,
    train_config: Optional[str] = None,
    model_file: Optional[str] = None,
    model_tag: Optional[str] = None,
    ngpu: int = 0,
    dtype: str = "float32",
    reference_compat: bool = False,
    token2wav_train_config: Optional[str] = None,
    token2wav_model_file: Optional[str] = None,
    token2wav_matmul_dtype: str = "float32",
    token2wav_estimator: str = "torch",
    prompt_config: Optional[str] = None,
    cachedir: Optional[str] = None,
    random_init: bool = False,
    tally: Optional[Tally] = None,
    compile_step: bool = False,
    int8_heads: bool = False,
    jobs: Optional[str] = None,
    **decoding_options,
) -> List[DecodeSummary]:
    """Build a :class:`Speech2Response` (from files or ``model_tag``) and decode a data dir,
    or, with ``jobs`` (a file for :func:`read_decode_jobs`), every data dir it lists with the one
    model: a recipe decoding many test sets loads the model once, not once a set."""
    if jobs:
        job_list = read_decode_jobs(jobs)
    elif output_dir and task and data_path_and_name_and_type:
        job_list = [
            DecodeJob(output_dir, task, think, key_file, tuple(data_path_and_name_and_type))
        ]
    else:
        raise ValueError("give --jobs, or --output_dir, --task and --data_path_and_name_and_type")
    if prompt is not None and len({job.task for job in job_list}) > 1:
        raise ValueError(f"--prompt is one task's instruction, but {jobs} lists several tasks")
    model_kwargs = dict(
        device=device_for_ngpu(ngpu),
        dtype=dtype,
        reference_compat=reference_compat,
        token2wav_train_config=token2wav_train_config,
        token2wav_model_file=token2wav_model_file,
        token2wav_matmul_dtype=token2wav_matmul_dtype,
        token2wav_estimator=token2wav_estimator,
        prompt_config=prompt_config,
        compile_step=compile_step,
        int8_heads=int8_heads,
    )
    if model_tag:
        s2r = Speech2Response.from_pretrained(model_tag, cachedir=cachedir, **model_kwargs)
    else:
        s2r = Speech2Response(train_config, model_file, random_init=random_init, **model_kwargs)
    summaries = []
    for job in job_list:
        out = decode_data_dir(
            s2r,
            job.data_path_and_name_and_type,
            job.output_dir,
            job.task,
            job.think,
            prompt,
            job.key_file,
            batch_size,
            tally,
            **decoding_options,
        )
        summaries.append(DecodeSummary.read(out))
    return summaries


def _append(out: Path, keys, responses: Sequence[Response], task: str, think: str) -> None:
    """Append one batch; ``text`` last, so an interrupted batch is decoded again."""
    files = {"token_int": [], "text": []}
    if think != "none":
        files["think"] = []
    if task in SPEECH_TASKS:
        files["speech_token"] = []
    wav_lines = []
    for key, r in zip(keys, responses):
        files["token_int"].append(f"{key} {' '.join(map(str, r.token_int))}")
        if "think" in files:
            files["think"].append(f"{key} {_one_line(r.think)}")
        if "speech_token" in files:
            files["speech_token"].append(f"{key} {' '.join(map(str, r.speech_token))}")
        if r.wav is not None:
            (out / "wav").mkdir(parents=True, exist_ok=True)
            path = child_path(out / "wav", key, ".wav").resolve()
            soundfile.write(path, r.wav, r.sample_rate)
            wav_lines.append(f"{key} {path}")
        files["text"].append(f"{key} {_one_line(r.text)}")
    if wav_lines:
        files = {"wav.scp": wav_lines, **files}
        files["text"] = files.pop("text")
    for name, lines in files.items():
        with (out / name).open("a", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _read_entries(path: Path) -> Dict[str, str]:
    """``{uttid: value}`` of complete lines (a last line without its newline was cut by a
    kill and is dropped); a later line of the same id wins."""
    entries: Dict[str, str] = {}
    if not path.exists():
        return entries
    data = path.read_text(encoding="utf-8", errors="replace")
    lines = data.split("\n")
    for line in lines[:-1]:  # the part after the last newline is incomplete (or empty)
        key, _, value = line.partition(" ")
        if key:
            entries[key] = value
    return entries


def repair_outputs(out: Path) -> set:
    """After a kill: keep, in every output file, exactly one line for each utterance whose
    ``text`` line is complete (``text`` is appended last); return those ids."""
    done = set(_read_entries(out / "text"))
    for name in DECODE_FILES:
        path = out / name
        if path.exists():
            entries = {k: v for k, v in _read_entries(path).items() if k in done}
            _write_sorted(path, entries)
    return done


def _write_sorted(path: Path, entries: Dict[str, str]) -> None:
    with atomic_write(path) as f:
        f.writelines(f"{k} {entries[k]}\n" for k in sorted(entries, key=lambda k: k.encode()))


def _sort_outputs(out: Path) -> None:
    """Kaldi order (byte order of utterance ids), one line per id (the last one wins)."""
    for name in DECODE_FILES:
        path = out / name
        if path.exists():
            _write_sorted(path, _read_entries(path))


def _reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def check_decode_info(out: Path, info: Dict[str, Optional[str]]) -> None:
    """Record the settings of a decode dir, or refuse a re-run with other settings (its
    finished utterances would be kept and mixed with the new ones)."""
    path = out / "decode_info.json"
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = {k: (old.get(k), v) for k, v in info.items() if old.get(k) != v}
        if diff:
            raise ValueError(
                f"{out} was decoded with other settings ("
                + ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
                + "); use another --output_dir or remove it"
            )
    elif (out / "text").exists():
        raise ValueError(
            f"{out} holds outputs without decode_info.json (made by an older version?); "
            "use another --output_dir or remove it"
        )
    else:
        atomic_write_text(path, json.dumps(info, indent=1, sort_keys=True) + "\n")
