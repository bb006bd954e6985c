"""An HTTP server for many clients: OpenAI-style audio chat over one continuously batched decoder.

Endpoints (wire format: :mod:`espnet2_echat.inference.server_protocol`):

* ``POST /v1/chat/completions``: JSON, audio as a base64 WAV ``input_audio`` part; with
  ``"stream": true`` the reply streams as server-sent events (text, CoT, speech tokens and,
  with a token2wav attached, audio chunks), else one ``chat.completion`` object;
* ``POST /v1/audio/chat``: the same as a multipart form with the audio as a ``file`` upload;
* ``GET /v1/models``, ``GET /health``.

The HTTP layer is FastAPI on uvicorn (installed with gradio). Every request's decode steps
run in one :class:`~espnet2_echat.inference.continuous_batching.ContinuousBatcher`: a new
request joins the running batch at the next step. In front of it an
:class:`~espnet2_echat.inference.request_limits.AdmissionQueue` admits at most
``max_concurrent`` requests into the batch and lets ``max_queued`` wait (then 503 busy), and
upload size, audio length, text length and the decode budgets are checked before anything
is decoded. A login is required when :class:`Credentials` names users (HTTP Basic, or a
Bearer key ``user:password`` as OpenAI clients send it).
"""

import base64
import itertools
import json
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Dict, Iterator, Optional

from fastapi import Body, FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from espnet2_echat.inference.continuous_batching import ContinuousBatcher
from espnet2_echat.inference.request_limits import (
    AdmissionQueue,
    Credentials,
    RequestLimits,
    RequestRejected,
    Unauthorized,
)
from espnet2_echat.inference.server_protocol import (
    ChatRequest,
    ChunkWriter,
    ThinkSplitter,
    decode_wav,
    echat_fields,
    make_request,
    parse_chat_body,
    pcm16_base64,
)
from espnet2_echat.inference.settings import default_options
from espnet2_echat.inference.speech2response import Request as ModelRequest
from espnet2_echat.inference.speech2response import Speech2Response, StreamChunk


@dataclass(frozen=True)
class DecodeBudget:
    """The most a client may ask for (a request above it is refused); a request that names
    no budget gets its task's default, capped here."""

    max_new_tokens: int = 500
    max_new_speech_tokens: int = 1000

    def apply(self, request: ChatRequest) -> None:
        defaults = default_options(request.task, request.think)
        for name in ("max_new_tokens", "max_new_speech_tokens"):
            cap = getattr(self, name)
            asked = request.overrides.get(name)
            if asked is not None and asked > cap:
                raise RequestRejected(f"{name}={asked} exceeds this server's limit of {cap}")
            if asked is None:
                request.overrides[name] = min(getattr(defaults, name), cap)


class EChatServer:
    """The model, the batcher and the limits behind the HTTP app (:meth:`app`)."""

    def __init__(
        self,
        s2r: Speech2Response,
        limits: RequestLimits = RequestLimits(max_concurrent=8, max_queued=16),
        credentials: Credentials = Credentials(),
        budget: DecodeBudget = DecodeBudget(),
        model_name: str = "osum-echat",
        speech_chunk: int = 18,
    ):
        self.s2r = s2r
        self.limits = limits
        self.credentials = credentials
        self.budget = budget
        self.model_name = model_name
        self.speech_chunk = speech_chunk
        self.admission = AdmissionQueue(limits)
        self.batcher = ContinuousBatcher(s2r.model.llm, max_batch=limits.max_concurrent).start()

    def close(self) -> None:
        self.batcher.close()

    # ------------------------------------------------------------------ decoding
    def chunks(self, request: ChatRequest) -> Iterator[StreamChunk]:
        """Admit ``request``, decode it in the shared batch and yield its chunks.

        Raises :class:`Busy` when the queue is full and the request's own errors (bad audio,
        unknown option) before the first chunk, so they can still become an HTTP status.
        """
        self.budget.apply(request)
        with ExitStack() as stack:
            stack.enter_context(self.admission.slot())
            model_request = ModelRequest(request.wav, request.fs, request.text)
            stream = self.batcher.submit(
                lambda: self.s2r.prepare_job(
                    model_request, request.task, request.think, **request.overrides
                )
            )
            stack.callback(stream.cancel)  # a client gone mid-reply frees its row
            tokens = iter(stream)
            try:
                first = [next(tokens)]  # waits for the prefill; raises the request's errors
            except StopIteration:
                first = []
            except RequestRejected:
                raise
            except ValueError as e:  # the model's checks of the input (too short, ...)
                raise RequestRejected(str(e)) from None
            kind, audio = stream.job.context
            yield from self.s2r.stream_tokens(
                itertools.chain(first, tokens),
                model_request,
                kind,
                request.think,
                audio,
                self.speech_chunk,
            )

    def answer(self, request: ChatRequest):
        """An HTTP response for ``request``: JSON, or server-sent events when it streams."""
        chunks = self.chunks(request)
        writer = ChunkWriter(self.model_name)
        try:
            first = next(chunks)  # admission and request errors become an HTTP status here
        except BaseException:
            chunks.close()
            raise
        if not request.stream:
            final = first.final
            for chunk in chunks:
                final = chunk.final or final
            return JSONResponse(writer.completion(request, final))
        return StreamingResponse(
            self._events(first, chunks, request, writer),
            media_type="text/event-stream",
        )

    def _events(self, first, chunks, request: ChatRequest, writer: ChunkWriter) -> Iterator[str]:
        """Server-sent events of ``first`` and the rest of the ``chunks`` generator."""
        splitter = ThinkSplitter() if request.think != "none" else None
        fs = getattr(self.s2r.token2wav, "fs", None)

        def event(payload: Dict) -> str:
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

        yield event(writer.chunk({"role": "assistant"}))
        try:
            for chunk in itertools.chain([first], chunks):
                if chunk.text:
                    think, reply = splitter.feed(chunk.text) if splitter else ("", chunk.text)
                    if think:
                        yield event(writer.chunk({"reasoning_content": think}))
                    if reply:
                        yield event(writer.chunk({"content": reply}))
                if chunk.speech_token:
                    yield event(writer.chunk({"speech_token": chunk.speech_token}))
                if chunk.wav is not None:
                    audio = {"data": pcm16_base64(chunk.wav), "format": "pcm16", "sample_rate": fs}
                    yield event(writer.chunk({"audio": audio}))
                if chunk.final is not None:
                    rest = splitter.finish() if splitter else ""
                    if rest:
                        yield event(writer.chunk({"reasoning_content": rest}))
                    fields = echat_fields(request, chunk.final)
                    yield event(writer.chunk({}, "stop", echat=fields))
        except Exception as e:  # after the headers: the error goes into the stream
            yield event({"error": {"message": str(e), "type": type(e).__name__}})
        finally:
            chunks.close()
        yield "data: [DONE]\n\n"

    # ------------------------------------------------------------------ HTTP
    def authorize(self, header: Optional[str]) -> None:
        """HTTP Basic, or ``Bearer user:password``; nothing when no login is required."""
        if header and header.startswith("Bearer "):
            header = "Basic " + base64.b64encode(header[7:].encode()).decode()
        self.credentials.check_basic(header)

    def app(self) -> FastAPI:
        """The FastAPI application."""
        app = FastAPI(title="OSUM-EChat server", version="1")
        server = self
        # a JSON body carries the audio in base64: 4/3 of the upload limit, plus the fields
        max_body = server.limits.max_upload_bytes * 4 // 3 + 64 * 1024

        @app.middleware("http")
        async def guard(request: Request, call_next):
            if request.url.path != "/health":
                try:
                    await run_in_threadpool(server.authorize, request.headers.get("authorization"))
                    size = int(request.headers.get("content-length") or 0)
                    if size > max_body:
                        raise RequestRejected(f"request body of {size} bytes exceeds {max_body}")
                except RequestRejected as e:
                    return _error(e)
            return await call_next(request)

        @app.exception_handler(RequestRejected)
        async def rejected(request: Request, e: RequestRejected):
            return _error(e)

        @app.get("/health")
        def health():
            return {"status": "ok", "decoding": len(server.batcher.rows),
                    "peak_batch": server.batcher.peak_batch, "steps": server.batcher.steps,
                    "admitted": server.admission.admitted, "refused": server.admission.refused}

        @app.get("/v1/models")
        def models():
            return {"object": "list", "data": [{"id": server.model_name, "object": "model"}]}

        @app.post("/v1/chat/completions")
        def chat_completions(body: Dict = Body(...)):
            return server.answer(parse_chat_body(body, server.limits))

        @app.post("/v1/audio/chat")
        def audio_chat(
            file: Optional[UploadFile] = File(None),
            text: Optional[str] = Form(None),
            task: Optional[str] = Form(None),
            think: Optional[str] = Form(None),
            modalities: str = Form("text,audio"),
            stream: bool = Form(False),
            max_tokens: Optional[int] = Form(None),
            max_speech_tokens: Optional[int] = Form(None),
            temperature: Optional[float] = Form(None),
            top_p: Optional[float] = Form(None),
            top_k: Optional[int] = Form(None),
            seed: Optional[int] = Form(None),
        ):
            wav, fs = None, 16000
            if file is not None:
                data = file.file.read(server.limits.max_upload_bytes + 1)
                wav, fs = decode_wav(data, server.limits, f"upload {file.filename!r}")
            fields = dict(locals())
            fields["modalities"] = [m.strip() for m in modalities.split(",") if m.strip()]
            return server.answer(make_request(fields, wav, fs, text, server.limits))

        return app


def _error(e: RequestRejected) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="echat"'} if isinstance(e, Unauthorized) else None
    body = {"error": {"message": str(e), "type": type(e).__name__, "code": e.status}}
    return JSONResponse(body, status_code=e.status, headers=headers)


def serve(server: EChatServer, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"):
    """Serve ``server``'s app with uvicorn until interrupted."""
    import uvicorn

    try:
        uvicorn.run(server.app(), host=host, port=port, log_level=log_level)
    finally:
        server.close()
