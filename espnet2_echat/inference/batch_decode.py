"""Decode a Kaldi-style data dir into Kaldi-style output files (DESIGN.md "Decoding").

Inputs are named ESPnet-style, ``path,name,type``: ``speech`` (``sound``: a ``wav.scp``),
``text`` (TTS text), ``question`` (T2T user text) and ``history`` (JSON turns), each
``text`` type. Outputs, keyed by utterance id and sorted: ``text``, ``token_int``, and
``think`` (think modes), ``speech_token`` (S2S, TTS), ``wav.scp`` + ``wav/*.wav`` (with a
token2wav model). Finished utterances (already in ``text``) are skipped on a re-run.
"""

import json
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import soundfile
from espnet2.fileio.read_text import read_2columns_text
from espnet2.fileio.sound_scp import SoundScpReader

from espnet2_echat.inference.conversation import Turn
from espnet2_echat.inference.speech2response import Request, Response, Speech2Response

INPUT_NAMES = ("speech", "text", "question", "history")


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
    """Turns of a data dir's ``history`` entry (JSON list, DESIGN.md data-dir contract)."""
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


def decode_data_dir(
    s2r: Speech2Response,
    data_path_and_name_and_type: Sequence[str],
    output_dir: str,
    task: str,
    think: str = "none",
    prompt: Optional[str] = None,
    key_file: Optional[str] = None,
    batch_size: int = 1,
    **overrides,
) -> Path:
    """Decode every utterance of ``key_file`` (default: the first input's keys).

    Returns the output directory.
    """
    inputs = parse_data_triplets(data_path_and_name_and_type)
    main = "text" if task == "tts" else "question" if task == "t2t" else "speech"
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
    done = set(read_2columns_text(out / "text")) if (out / "text").exists() else set()
    todo = [k for k in keys if k not in done]
    logging.info(
        f"{len(keys)} utterances, {len(done & set(keys))} already decoded, {len(todo)} to go"
    )
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        requests = []
        for key in chunk:
            request = Request()
            if main == "speech":
                fs, wav = speech[key]
                request.speech, request.fs = wav, fs
            else:
                request.text = texts[main][key]
            if "history" in texts and key in texts["history"]:
                source = f"{inputs['history'][0]}: {key}"
                request.history = _history(s2r, texts["history"][key], source)
            requests.append(request)
        responses = s2r.batch(requests, task, think, prompt=prompt, **overrides)
        _append(out, chunk, responses, task, think)
    _sort_outputs(out)
    return out


def inference(
    output_dir: str,
    data_path_and_name_and_type: Sequence[str],
    task: str,
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
    prompt_config: Optional[str] = None,
    **decoding_options,
) -> Path:
    """Build a :class:`Speech2Response` (from files or ``model_tag``) and decode a data dir."""
    model_kwargs = dict(
        device="cuda" if ngpu > 0 else "cpu",
        dtype=dtype,
        reference_compat=reference_compat,
        token2wav_train_config=token2wav_train_config,
        token2wav_model_file=token2wav_model_file,
        prompt_config=prompt_config,
    )
    if model_tag:
        s2r = Speech2Response.from_pretrained(model_tag, **model_kwargs)
    else:
        s2r = Speech2Response(train_config, model_file, **model_kwargs)
    return decode_data_dir(
        s2r,
        data_path_and_name_and_type,
        output_dir,
        task,
        think,
        prompt,
        key_file,
        batch_size,
        **decoding_options,
    )


def _append(out: Path, keys, responses: Sequence[Response], task: str, think: str) -> None:
    """Append one batch; ``text`` last, so an interrupted batch is decoded again."""
    files = {"token_int": [], "text": []}
    if think != "none":
        files["think"] = []
    if task in ("s2s", "tts"):
        files["speech_token"] = []
    wav_lines = []
    for key, r in zip(keys, responses):
        files["token_int"].append(f"{key} {' '.join(map(str, r.token_int))}")
        if "think" in files:
            files["think"].append(f"{key} {_one_line(r.think)}")
        if "speech_token" in files:
            files["speech_token"].append(f"{key} {' '.join(map(str, r.speech_token))}")
        if r.wav is not None:
            (out / "wav").mkdir(exist_ok=True)
            path = (out / "wav" / f"{key}.wav").resolve()
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


def _sort_outputs(out: Path) -> None:
    """Kaldi order (byte order of utterance ids), one line per id (the last one wins)."""
    for name in ("text", "think", "token_int", "speech_token", "wav.scp"):
        path = out / name
        if not path.exists():
            continue
        entries = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(" ")
            entries[key] = value
        with path.open("w", encoding="utf-8") as f:
            f.writelines(f"{k} {entries[k]}\n" for k in sorted(entries, key=lambda k: k.encode()))
