"""The server's wire format: OpenAI-style audio chat requests in, chat-completion chunks out.

Request (``POST /v1/chat/completions``, JSON), the subset of OpenAI's chat-completions body
that a one-turn speech chat uses, plus this model's own fields::

    {"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "<base64 wav>", "format": "wav"}},
        {"type": "text", "text": "..."}]}],
     "modalities": ["text", "audio"],      # audio out: S2S; text only: S2T chat
     "stream": true,                       # server-sent events
     "task": "asr",                        # optional: any echat_inference --task
     "think": "none|tag|language",
     "max_tokens": 200, "max_speech_tokens": 500,
     "temperature": 0,                     # 0: greedy; absent: the task's defaults
     "top_p": 0.9, "top_k": 5, "seed": 1}

The multipart form of ``POST /v1/audio/chat`` carries the same fields, the audio as a
``file`` upload. Streamed chunks are ``chat.completion.chunk`` objects whose ``delta`` holds
``content`` (reply text), ``reasoning_content`` (the CoT, as OpenAI-compatible servers
stream reasoning), ``speech_token`` (ids) or ``audio`` (base64 16-bit PCM with its rate);
the last chunk has ``finish_reason: "stop"`` and an ``echat`` object with the parsed reply.
"""

import base64
import io
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import soundfile as sf

from espnet2_echat.data.cot import THINK_END_VARIANTS, THINK_START
from espnet2_echat.data.task_registry import TASK_NAMES, TEXT_INPUT_TASKS, THINK_MODES
from espnet2_echat.inference.request_limits import (
    RequestLimits,
    RequestRejected,
    check_audio,
    check_text,
    check_upload_size,
)
from espnet2_echat.inference.speech2response import Response

# decoding fields a client may set, and the DecodingOptions field each one sets
_OPTION_FIELDS = {
    "max_tokens": "max_new_tokens",
    "max_speech_tokens": "max_new_speech_tokens",
    "top_p": "top_p",
    "top_k": "top_k",
    "seed": "seed",
}


@dataclass
class ChatRequest:
    """One parsed request: what to decode and how to answer."""

    task: str
    think: str = "none"
    wav: Optional[np.ndarray] = None
    fs: int = 16000
    text: Optional[str] = None
    stream: bool = False
    overrides: Dict[str, Any] = field(default_factory=dict)


def decode_wav(data: bytes, limits: RequestLimits, what: str = "audio") -> Tuple[np.ndarray, int]:
    """WAV (or any format libsndfile reads) bytes -> mono float32 samples and rate, checked
    against ``limits``; stereo is averaged."""
    check_upload_size(len(data), limits, what)
    try:
        wav, fs = sf.read(io.BytesIO(data), dtype="float32")
    except (RuntimeError, sf.LibsndfileError) as e:
        raise RequestRejected(f"{what}: not a readable audio file ({e})") from None
    if wav.ndim == 2:
        wav = wav.mean(axis=1)
    check_audio(wav, int(fs), limits, what)
    return wav, int(fs)


def _user_content(body: Dict[str, Any]) -> List[Dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestRejected("'messages' must be a non-empty list")
    if len(messages) != 1 or not isinstance(messages[0], dict) or messages[0].get("role") != "user":
        raise RequestRejected(
            "this server answers one user turn: 'messages' must hold exactly one message "
            "with role 'user' (history and system messages are not supported)"
        )
    content = messages[0].get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise RequestRejected("message content must be a string or a list of parts")
    return content


def parse_chat_body(body: Dict[str, Any], limits: RequestLimits) -> ChatRequest:
    """An OpenAI-style chat-completions body -> :class:`ChatRequest` (raises
    :class:`RequestRejected` naming the field at fault)."""
    if not isinstance(body, dict):
        raise RequestRejected("the request body must be a JSON object")
    wav, fs, texts = None, 16000, []
    for n, part in enumerate(_user_content(body)):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            if wav is not None:
                raise RequestRejected("one input_audio part per request")
            try:
                data = base64.b64decode(audio.get("data", ""), validate=True)
            except ValueError:
                raise RequestRejected(f"content part {n}: input_audio.data is not base64") from None
            wav, fs = decode_wav(data, limits, f"content part {n} (input_audio)")
        else:
            raise RequestRejected(
                f"content part {n}: type {kind!r} is not one of 'text', 'input_audio'"
            )
    return make_request(body, wav, fs, "".join(texts) or None, limits)


def make_request(
    fields_: Dict[str, Any],
    wav: Optional[np.ndarray],
    fs: int,
    text: Optional[str],
    limits: RequestLimits,
) -> ChatRequest:
    """Task, think mode and decoding options of a request from its ``fields_`` (JSON body or
    form), with its decoded audio and text."""
    check_text(text, limits)
    modalities = fields_.get("modalities") or ["text"]
    task = fields_.get("task")
    if task is None:
        if wav is None:
            task = "tts" if list(modalities) == ["audio"] else "t2t"
        else:
            task = "s2s" if "audio" in modalities else "s2t_chat"
    if task not in TASK_NAMES:
        raise RequestRejected(f"task {task!r} is not one of {sorted(TASK_NAMES)}")
    think = fields_.get("think") or "none"
    if think not in THINK_MODES:
        raise RequestRejected(f"think {think!r} is not one of {sorted(THINK_MODES)}")
    if task in TEXT_INPUT_TASKS and not text:
        raise RequestRejected(f"task {task!r} needs text input")
    if task not in TEXT_INPUT_TASKS and wav is None:
        raise RequestRejected(f"task {task!r} needs audio input (an input_audio part)")
    overrides: Dict[str, Any] = {}
    for name, option in _OPTION_FIELDS.items():
        if fields_.get(name) is not None:
            overrides[option] = _number(fields_[name], name, float if name == "top_p" else int)
    if fields_.get("temperature") is not None:
        temperature = _number(fields_["temperature"], "temperature", float)
        if temperature == 0:
            overrides["do_sample"] = False
        else:
            overrides.update(do_sample=True, temperature=temperature)
    return ChatRequest(task, think, wav, fs, text, _flag(fields_.get("stream")), overrides)


def _number(value, name, kind):
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise RequestRejected(f"{name} must be a number, got {value!r}") from None


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


class ThinkSplitter:
    """Split streamed raw text into CoT (``reasoning_content``) and reply (``content``) pieces.

    The text starts with ``<think>`` when the model thinks; the CoT ends at the first end
    marker (``data.cot.THINK_END_VARIANTS``). The last few characters of a CoT are held back
    until they cannot be the start of an end marker, so no marker leaks into either part.
    """

    HOLD = max(len(m) for m in THINK_END_VARIANTS)

    def __init__(self):
        self.full = ""
        self.mode = "start"
        self.offset = 0  # where the current part starts in ``full``
        self.sent = 0  # characters of the current part already emitted

    def feed(self, piece: str) -> Tuple[str, str]:
        """Add ``piece``; returns (new CoT text, new reply text)."""
        self.full += piece
        think = ""
        if self.mode == "start":
            body = self.full.lstrip()
            if THINK_START.startswith(body):
                return "", ""
            if body.startswith(THINK_START):
                self.mode = "think"
                self.offset = len(self.full) - len(body) + len(THINK_START)
            else:
                self.mode = "reply"
        if self.mode == "think":
            body = self.full[self.offset :]
            ends = [(body.find(m), m) for m in THINK_END_VARIANTS if body.find(m) >= 0]
            if not ends:
                upto = max(self.sent, len(body) - self.HOLD)
                think, self.sent = body[self.sent : upto], upto
                return think, ""
            at, marker = min(ends)
            think = body[self.sent : at]
            self.mode, self.offset, self.sent = "reply", self.offset + at + len(marker), 0
        reply = self.full[self.offset + self.sent :]
        self.sent += len(reply)
        return think, reply

    def finish(self) -> str:
        """The CoT text still held back when the stream ends inside the CoT."""
        if self.mode != "think":
            return ""
        rest = self.full[self.offset + self.sent :]
        self.sent += len(rest)
        return rest


class ChunkWriter:
    """``chat.completion(.chunk)`` objects of one reply."""

    def __init__(self, model: str):
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model

    def chunk(self, delta: Dict[str, Any], finish_reason: Optional[str] = None, **extra) -> Dict:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            **extra,
        }

    def completion(self, request: ChatRequest, response: Response) -> Dict:
        message = {"role": "assistant", "content": response.text, "reasoning_content": response.think}
        if response.wav is not None:
            message["audio"] = {"data": wav_base64(response.wav, response.sample_rate), "format": "wav"}
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "echat": echat_fields(request, response),
        }


def echat_fields(request: ChatRequest, response: Response) -> Dict[str, Any]:
    """This model's own outputs of a reply (as ``echat_inference`` writes them)."""
    return {
        "task": request.task,
        "think_mode": request.think,
        "text": response.text,
        "think": response.think,
        "reply_emotion": response.reply_emotion,
        "token_int": response.token_int,
        "speech_token": response.speech_token,
    }


def pcm16_base64(wav: np.ndarray) -> str:
    """Float samples -> base64 little-endian 16-bit PCM (OpenAI's streamed audio format)."""
    pcm = (np.clip(wav, -1.0, 1.0) * 32767).astype("<i2")
    return base64.b64encode(pcm.tobytes()).decode()


def wav_base64(wav: np.ndarray, fs: int) -> str:
    """Float samples -> base64 of a 16-bit WAV file."""
    buf = io.BytesIO()
    sf.write(buf, wav, fs, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode()
