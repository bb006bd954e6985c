"""``Speech2Response``: the Python API of OSUM-EChat decoding (docs/decoding.md).

>>> s2r = Speech2Response.from_pretrained("exp/echat_tiny")      # or train_config/model_file
>>> out = s2r(speech=wav, fs=44100, task="s2s", think="tag")
>>> out.text, out.think, out.speech_token, out.wav

Audio of any rate is resampled to 16 kHz; text-input tasks (``t2t``, ``tts``) take ``text``.
Many requests decode together with :meth:`Speech2Response.batch` (left padding, one task),
a reply streams with :meth:`Speech2Response.stream`, and a :class:`Conversation` passed as
``history`` carries a multi-turn chat (the new turn is appended after each call).
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
import torchaudio

from espnet2_echat.data.cot import parse_tag_think, split_think
from espnet2_echat.data.labels import REPLY_EMOTION_LABELS, split_leading_tag
from espnet2_echat.data.layout import LayoutBuilder
from espnet2_echat.data.preprocessor import load_prompt_config
from espnet2_echat.data.quirks import ReferenceQuirks
from espnet2_echat.inference import decoding_quirks
from espnet2_echat.inference.audio_input import as_float_waveform
from espnet2_echat.inference.continuous_batching import DecodeJob
from espnet2_echat.inference.conversation import Conversation, Turn, embed_prompt, history_prompt
from espnet2_echat.inference.decoder import build_plan, generate, iter_generate
from espnet2_echat.inference.parsing import parse_generation
from espnet2_echat.data.task_registry import (
    HISTORY_TASKS,
    SPEECH_TASKS,
    TASKS,
    TEXT_INPUT_TASKS,
    UNDERSTANDING_TASKS,
    check_task,
)
from espnet2_echat.inference.settings import DEFAULT_INSTRUCTIONS, default_options
from espnet2_echat.inference.threads import synthesis_threads, with_threads
from espnet2_echat.inference.voice import BackgroundVoice, load_voice
from espnet2_echat.models.splice import pack

MODEL_FS = 16000
# Streaming: the first token2wav chunk advances 10 tokens (30 with the overlap) instead of
# the reference's 50, so a streamed reply's audio waits for 30 speech tokens instead of 70
# and for a chunk of 361 flow frames instead of 499 (with a 258-frame prompt); later chunks
# are the reference's 50 + 20.
FIRST_HOP_LEN = 10
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Request:
    """One input: audio (any rate, 1-D) and/or text, and an optional chat history."""

    speech: Optional[Union[np.ndarray, torch.Tensor]] = None
    fs: int = MODEL_FS
    text: Optional[str] = None
    history: Optional[Union[Conversation, Sequence[Turn]]] = None


@dataclass
class Response:
    """One reply.

    ``text`` is the reply (transcript / label for understanding tasks) without CoT and
    special tokens; ``think`` the CoT; ``token_int`` every generated text-phase id (CoT
    included, no ``<|im_end|>``); ``speech_token`` the speech ids without markers; ``wav``
    the synthesised reply when a token2wav model is attached. ``ids`` / ``heads`` are the
    raw generated ids (speech ids not offset) and ``"text"`` / ``"speech"`` per id.
    """

    text: str
    think: str = ""
    token_int: List[int] = field(default_factory=list)
    speech_token: List[int] = field(default_factory=list)
    reply_emotion: Optional[str] = None
    wav: Optional[np.ndarray] = None
    sample_rate: Optional[int] = None
    ids: List[int] = field(default_factory=list)
    heads: List[str] = field(default_factory=list)
    scores: Optional[List[torch.Tensor]] = None


@dataclass
class StreamChunk:
    """A piece of a streamed reply: new text, new speech tokens, or the final response."""

    text: str = ""
    speech_token: List[int] = field(default_factory=list)
    wav: Optional[np.ndarray] = None
    final: Optional[Response] = None


class Speech2Response:
    """Decode OSUM-EChat tasks with a trained or converted model.

    Args:
        train_config, model_file: ``config.yaml`` / ``model.pth`` of ``EChatTask``.
        device: ``auto`` (CUDA or an Ascend NPU when present, else CPU), ``cpu``,
            ``cuda[:i]`` or ``npu[:i]`` (:func:`espnet2_echat.train.devices.resolve_device`).
        dtype: ``float32`` (default), ``bfloat16`` or ``float16`` for the encoder, adapter
            and LLM (features and logits stay float32).
        reference_compat: reproduce the reference exactly: the preset that turns on every
            switch of ``quirks`` (prompt typos, S2S parsing off-by-one, stop rule, multi-turn
            layout, batched encoder masks, token2wav streaming); by default its bugs are fixed.
        quirks: the reference behaviours to reproduce one by one
            (:class:`espnet2_echat.data.quirks.ReferenceQuirks`); overrides ``reference_compat``.
        token2wav_train_config, token2wav_model_file: a ``Token2WavTask`` model that turns
            speech tokens into a waveform (``espnet2_echat.inference.token2wav``).
        max_history_turns: turns a :class:`Conversation` keeps.
        max_audio_seconds: longer user audio is rejected (default: what the encoder's
            positional table allows, 600 s for the released model).
        prompt_config: ``{task tag: [instruction, ...]}`` yaml; an understanding task's
            default instruction is the first entry of its tag. Default: the training
            config's ``preprocessor_conf.prompt_config`` (not under reference_compat), else
            ``settings.DEFAULT_INSTRUCTIONS`` (the reference's inference instructions).
        random_init: allow ``model_file=None`` (random weights, for tests and timing);
            without it a missing model file is an error, never silent random weights.
        token2wav_matmul_dtype: ``float32`` or ``bfloat16`` for the token2wav flow
            estimator's products and HiFT's convolutions (``Token2WavInference.matmul_dtype``).
        token2wav_estimator: ``torch`` or ``onnx`` (``Token2WavInference.estimator_backend``).
        token2wav_first_hop_len: tokens the first streamed audio chunk advances
            (``FIRST_HOP_LEN``; None or ``reference_compat``: the reference's 50).
        synthesis_nthreads: torch threads of a streamed reply's token2wav synthesis, which
            runs beside decoding on its own thread; decoding keeps the rest of the caller's
            threads meanwhile (``threads.synthesis_threads``). 0 (the default, as measured
            at the small size: ``benchmarks/README.md``): no overlap, decoding pauses while
            a chunk is synthesised with every thread.
        compile_step: run the LLM's decode steps through a compiled step (``torch.compile``;
            CUDA graphs on CUDA; ``SpeechLLM.enable_step_capture``). The first decode of a
            batch size compiles (seconds to a minute on CPU); greedy ids equal eager ones.
        int8_heads: decode with int8 text and speech heads (CPU,
            ``espnet2_echat.models.int8_heads``): fewer bytes a step, logits within ~2 %.
    """

    def __init__(
        self,
        train_config: Optional[Union[str, Path]] = None,
        model_file: Optional[Union[str, Path]] = None,
        device: str = "cpu",
        dtype: str = "float32",
        reference_compat: bool = False,
        token2wav_train_config: Optional[Union[str, Path]] = None,
        token2wav_model_file: Optional[Union[str, Path]] = None,
        max_history_turns: int = 5,
        max_audio_seconds: Optional[float] = None,
        prompt_config: Optional[Union[str, Path]] = None,
        random_init: bool = False,
        token2wav_matmul_dtype: str = "float32",
        token2wav_first_hop_len: Optional[int] = FIRST_HOP_LEN,
        token2wav_estimator: str = "torch",
        quirks: Optional[ReferenceQuirks] = None,
        synthesis_nthreads: Optional[int] = None,
        compile_step: bool = False,
        int8_heads: bool = False,
    ):
        from espnet2_echat.tasks.echat import EChatTask

        from espnet2_echat.train.devices import resolve_device

        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        if model_file is None and not random_init:
            raise FileNotFoundError(
                f"no model file given (train_config={train_config}): give model_file "
                "(model.pth), or random_init=True to decode with random weights on purpose"
            )
        if model_file is not None and not Path(model_file).is_file():
            raise FileNotFoundError(f"model_file {model_file} does not exist")
        if max_history_turns < 0 or (max_audio_seconds is not None and max_audio_seconds <= 0):
            raise ValueError(
                "expected max_history_turns >= 0 and max_audio_seconds > 0, got "
                f"{max_history_turns} and {max_audio_seconds}"
            )
        device = resolve_device(device)  # auto | cpu | cuda[:i] | npu[:i]
        model, args = EChatTask.build_model_from_file(train_config, model_file, device)
        model.eval()
        for part in (model.encoder, model.adapter, model.llm):
            part.to(_DTYPES[dtype])
        if torch.device(device).type == "cpu":
            model.llm.use_column_major_weights()  # ~2x faster decode steps on CPU
        model.llm.enable_step_capture(compile_step)
        if int8_heads:
            from espnet2_echat.models.int8_heads import use_int8_heads

            use_int8_heads(model.llm)
        self.model = model
        self.model_file = str(model_file) if model_file is not None else None
        self.device = torch.device(device)
        self.quirks = quirks = ReferenceQuirks.coerce(quirks, reference_compat)
        self.reference_compat = quirks.all_on
        if quirks.encoder_mask_subsampling:  # off: the trained config's own setting stays
            model.encoder.encoder_mask_subsampling = True
        self.max_history_turns = max_history_turns
        self.layout = LayoutBuilder(
            EChatTask.text_tokenizer(args),
            model.llm.ids,
            quirks=quirks,
        )
        self.tokenizer = self.layout.tokenizer
        positions = getattr(model.encoder, "positions", None)
        limit = positions.shape[0] * 2 / 100 if positions is not None else float("inf")
        self.max_audio_seconds = min(max_audio_seconds or limit, limit)
        if prompt_config is None and quirks.reference_instructions:
            self.instructions = decoding_quirks.reference_instructions()
        else:
            self.instructions = _instructions(prompt_config or _trained_prompt_config(args))
        synthesis_threads(1, synthesis_nthreads)  # checks the number
        self.synthesis_nthreads = synthesis_nthreads
        self.token2wav = None
        if token2wav_train_config or token2wav_model_file:
            voice_options = dict(
                matmul_dtype=token2wav_matmul_dtype,
                estimator_backend=token2wav_estimator,
                first_token_hop_len=token2wav_first_hop_len,
            )
            if quirks.token2wav_reference_streaming:
                voice_options.update(decoding_quirks.REFERENCE_STREAMING)
            self.token2wav = load_voice(
                token2wav_train_config, token2wav_model_file, device, model.llm.ids, **voice_options
            )

    @classmethod
    def from_pretrained(
        cls, tag_or_dir: str, cachedir: Optional[str] = None, **kwargs
    ) -> "Speech2Response":
        """Build from a model directory (``config.yaml`` + ``model.pth``), a packed archive,
        an ``http(s)://`` URL of one (``URL#sha256=HEX`` checks its hash), an ESPnet
        model-zoo table name (espnet_model_zoo's ``table.csv`` or
        ``$ECHAT_MODEL_ZOO_TABLE``) or a Hugging Face repo name, unpacked with every path
        checked (``safety.archive``) into ``cachedir`` (default ``$ECHAT_CACHE_DIR`` or
        ``~/.cache/espnet_echat``, never the venv).

        Keyword arguments override the packed ones (e.g. ``device``, ``dtype``).
        """
        path = Path(tag_or_dir)
        if path.is_dir():
            model_files = sorted(path.glob("*.pth"))
            if not (path / "config.yaml").exists() or len(model_files) != 1:
                raise FileNotFoundError(
                    f"{path}: expected config.yaml and exactly one *.pth model file, found "
                    f"{[p.name for p in path.iterdir()]}"
                )
            found = dict(train_config=path / "config.yaml", model_file=model_files[0])
        else:
            from espnet2_echat.safety.download import fetch_packed_model

            packed = fetch_packed_model(str(tag_or_dir), cachedir)
            known = ("train_config", "model_file", "token2wav_train_config", "token2wav_model_file")
            found = {k: v for k, v in packed.items() if k in known}
            missing = {"train_config", "model_file"} - set(found)
            if missing:
                raise KeyError(f"{tag_or_dir}: the packed model names no {sorted(missing)} ({packed})")
        given = {k: v for k, v in kwargs.items() if v is not None}
        return cls(**{**found, **given})

    # ------------------------------------------------------------------ inputs
    def prepare_waveform(self, speech, fs: int, index: int) -> torch.Tensor:
        """A 1-D float32 16 kHz tensor, or a clear error (integer PCM is scaled to [-1, 1];
        NaN/inf samples are refused)."""
        wav = torch.from_numpy(as_float_waveform(speech, f"request {index}"))
        if wav.dim() == 2 and 1 in wav.shape:
            wav = wav.flatten()
        if wav.dim() != 1:
            raise ValueError(
                f"request {index}: expected mono 1-D audio, got shape {tuple(wav.shape)}"
            )
        if not isinstance(fs, (int, np.integer)) or fs <= 0:
            raise ValueError(f"request {index}: sample rate must be a positive integer, got {fs!r}")
        if fs != MODEL_FS:
            wav = torchaudio.functional.resample(wav, fs, MODEL_FS)
        seconds = wav.numel() / MODEL_FS
        if seconds < 0.1:
            raise ValueError(
                f"request {index}: audio of {wav.numel()} samples ({seconds:.3f} s at 16 kHz) is "
                "too short; at least 0.1 s is needed"
            )
        if seconds > self.max_audio_seconds:
            raise ValueError(
                f"request {index}: audio of {seconds:.1f} s exceeds the model's limit of "
                f"{self.max_audio_seconds:.0f} s; split it into shorter segments"
            )
        return wav

    @torch.no_grad()
    def encode_audio(self, wavs: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """16 kHz waveforms -> per-utterance audio embeddings (n_i, H)."""
        lengths = torch.tensor([w.numel() for w in wavs], device=self.device)
        padded = torch.nn.utils.rnn.pad_sequence(list(wavs), batch_first=True).to(self.device)
        emb, emb_lengths = self.model.encode_speech(padded, lengths)
        return [emb[i, : int(n)] for i, n in enumerate(emb_lengths)]

    def _history(self, history) -> List[Turn]:
        if history is None:
            return []
        turns = history.turns if isinstance(history, Conversation) else list(history)
        if len(turns) > self.max_history_turns:
            logging.warning(
                f"history of {len(turns)} turns: keeping the last {self.max_history_turns}"
            )
            turns = turns[-self.max_history_turns :]
        return turns

    def _prompt(self, task, think, instruction, request, audio, index, interleaved):
        """(ids with placeholders, audios) of one request."""
        turns = self._history(request.history)
        otype = TASKS[task].output_type(think, bool(turns), interleaved)
        if task in TEXT_INPUT_TASKS:
            if not request.text:
                raise ValueError(f"request {index}: task {task!r} needs text input")
            if turns:
                raise ValueError(f"request {index}: task {task!r} does not take a history")
            ids = self.layout.prompt(otype, text_input=request.text)
            if interleaved:  # the interleaved answer starts with text, not the speech marker
                ids = ids[:-1]
            return ids, []
        if turns:
            if task not in HISTORY_TASKS:
                raise ValueError(f"request {index}: task {task!r} does not take a history")
            ids, audios = history_prompt(self.layout, otype, turns)
            return ids, audios + [audio]
        return self.layout.prompt(otype, instruction=instruction), [audio]

    # ------------------------------------------------------------------ decoding
    def _prepare(
        self,
        requests,
        task,
        think,
        prompt,
        logits_processor,
        stopping_criteria,
        interleaved,
        overrides,
    ):
        check_task(task, think)
        audio_task = task not in TEXT_INPUT_TASKS
        instruction = prompt if prompt is not None else self.instructions.get(task)
        audios: List[Optional[torch.Tensor]] = [None] * len(requests)
        if audio_task:
            for i, r in enumerate(requests):
                if r.speech is None:
                    raise ValueError(f"request {i}: task {task!r} needs speech input")
            wavs = [self.prepare_waveform(r.speech, r.fs, i) for i, r in enumerate(requests)]
            audios = self.encode_audio(wavs)
        embeds = []
        for i, (r, a) in enumerate(zip(requests, audios)):
            ids, parts = self._prompt(task, think, instruction, r, a, i, interleaved)
            embeds.append(embed_prompt(self.model.llm, ids, parts))
        batch = pack(embeds, padding_side="left")
        options = default_options(task, think)
        if self.quirks.reference_decoding_defaults:
            options = decoding_quirks.reference_options(options, task, think)
        options = options.updated(overrides)
        kind = "joint" if interleaved else task if task in SPEECH_TASKS else "text"
        llm = self.model.llm
        plan = build_plan(
            kind,
            options,
            llm.ids,
            self.quirks.s2s_stop_at_text_budget,
            logits_processor,
            stopping_criteria,
            self.layout.im_end_id,
        )
        generator = None
        if options.seed is not None:
            generator = torch.Generator(self.device).manual_seed(options.seed)
        return batch, plan, kind, generator, audios

    def prepare_job(
        self, request: Request, task: str = "s2s", think: str = "none", **overrides
    ) -> DecodeJob:
        """One request's prefill and plan for a :class:`ContinuousBatcher` (a server's
        batch); ``context`` holds ``(kind, audio)`` for :meth:`stream_tokens`."""
        batch, plan, kind, generator, audios = self._prepare(
            [request], task, think, None, None, None, False, overrides
        )
        return DecodeJob(
            batch.inputs_embeds,
            batch.attention_mask,
            batch.position_ids,
            plan,
            generator,
            context=(kind, audios[0]),
        )

    def batch(
        self,
        requests: Sequence[Request],
        task: str = "s2s",
        think: str = "none",
        prompt: Optional[str] = None,
        logits_processor: Optional[Sequence] = None,
        stopping_criteria: Optional[Sequence] = None,
        use_cache: bool = True,
        output_scores: bool = False,
        synthesize: bool = True,
        interleaved: bool = False,
        **overrides,
    ) -> List[Response]:
        """Decode many requests of one task together (left-padded batch).

        Args:
            task, think: see ``espnet2_echat.inference.settings``.
            prompt: instruction of an understanding task (default: ``self.instructions``).
            logits_processor, stopping_criteria: extra transformers-style processors and
                criteria; they see unified ids (speech id k as V + k), generated ids only.
            use_cache: KV-cached decoding (False recomputes the sequence every step).
            output_scores: keep each step's raw head logits in ``Response.scores``.
            synthesize: run the attached token2wav on speech replies.
            interleaved: decode the 6-text/18-speech format of models trained on the
                ``<STREAMING>`` tasks (S2S, TTS), one softmax over both heads.
            **overrides: ``DecodingOptions`` fields (do_sample, top_k, max_new_tokens, ...).
        """
        if not requests:
            return []
        batch, plan, kind, generator, audios = self._prepare(
            requests,
            task,
            think,
            prompt,
            logits_processor,
            stopping_criteria,
            interleaved,
            overrides,
        )
        gen = generate(
            self.model.llm,
            batch.inputs_embeds,
            batch.attention_mask,
            batch.position_ids,
            plan,
            use_cache,
            generator,
            output_scores,
        )
        responses = []
        for i, request in enumerate(requests):
            response = self._response(gen.ids[i], kind, think, synthesize)
            if output_scores:
                response.scores = gen.scores[i]
            self._remember(request, audios[i], response)
            responses.append(response)
        return responses

    def __call__(
        self,
        speech=None,
        fs: int = MODEL_FS,
        text: Optional[str] = None,
        task: str = "s2s",
        think: str = "none",
        history: Optional[Union[Conversation, Sequence[Turn]]] = None,
        **kwargs,
    ) -> Response:
        """Decode one request; ``kwargs`` as in :meth:`batch`."""
        return self.batch([Request(speech, fs, text, history)], task, think, **kwargs)[0]

    def stream(
        self,
        speech=None,
        fs: int = MODEL_FS,
        text: Optional[str] = None,
        task: str = "s2s",
        think: str = "none",
        history: Optional[Union[Conversation, Sequence[Turn]]] = None,
        speech_chunk: int = 18,
        prompt: Optional[str] = None,
        logits_processor: Optional[Sequence] = None,
        stopping_criteria: Optional[Sequence] = None,
        interleaved: bool = False,
        synthesis_nthreads: Optional[int] = None,
        **overrides,
    ) -> Iterator[StreamChunk]:
        """Yield the reply as it is generated: text pieces and speech tokens in chunks of
        ``speech_chunk``, waveform chunks as soon as the attached token2wav's streaming
        synthesis can make them (it is fed each chunk as it comes, and synthesises beside
        decoding: ``synthesis_nthreads``, default the constructor's), and finally a chunk
        whose ``final`` holds the whole :class:`Response`.

        Streamed text is the raw text (a CoT included); ``final`` splits it. Text comes before
        speech, or interleaved with it for ``interleaved`` models. Closing the generator early
        stops the synthesiser and waits for its thread (at most the chunk in progress).
        """
        request = Request(speech, fs, text, history)
        batch, plan, kind, generator, audios = self._prepare(
            [request],
            task,
            think,
            prompt,
            logits_processor,
            stopping_criteria,
            interleaved,
            overrides,
        )
        steps = iter_generate(
            self.model.llm,
            batch.inputs_embeds,
            batch.attention_mask,
            batch.position_ids,
            plan,
            generator=generator,
        )
        tokens = (int(step.ids[0]) for step in steps)
        yield from self.stream_tokens(
            tokens, request, kind, think, audios[0], speech_chunk, synthesis_nthreads
        )

    def stream_tokens(
        self,
        tokens: Iterable[int],
        request: Request,
        kind: str,
        think: str,
        audio: Optional[torch.Tensor],
        speech_chunk: int = 18,
        synthesis_nthreads: Optional[int] = None,
    ) -> Iterator[StreamChunk]:
        """The chunks of :meth:`stream` for generated unified ids ``tokens`` decoded elsewhere
        (a server's batch): ``kind``, ``audio`` as :meth:`_prepare` made them for ``request``."""
        ids: List[int] = []
        voice = None
        if self.token2wav is not None:
            total = torch.get_num_threads()
            if synthesis_nthreads is None:
                synthesis_nthreads = self.synthesis_nthreads
            synthesis = synthesis_threads(total, synthesis_nthreads)
            voice = BackgroundVoice(self.token2wav, synthesis, total)
            if voice.overlap:
                tokens = with_threads(tokens, voice.decoding_nthreads)
        wavs: List[np.ndarray] = []
        try:
            yield from self._stream_steps(tokens, voice, speech_chunk, wavs, ids)
        finally:
            if voice is not None:
                voice.close()  # also when the consumer stops early
        response = self._response(ids, kind, think, synthesize=False)
        if wavs:
            response.wav, response.sample_rate = np.concatenate(wavs), self.token2wav.fs
        self._remember(request, audio, response)
        yield StreamChunk(final=response)

    def _stream_steps(self, tokens, voice, speech_chunk, audio, ids) -> Iterator[StreamChunk]:
        """Turn generated ids into text / speech-token / audio chunks (fills ``ids``, ``audio``)."""
        sid = self.model.llm.ids
        text_ids: List[int] = []
        shown = ""
        pending: List[int] = []
        text_open, num_speech, speech_done = True, 0, False
        for token in tokens:
            ids.append(token)
            if not sid.is_speech(token):
                text_open = text_open and token != self.layout.im_end_id
                if text_open:
                    text_ids.append(token)
                    now = self.tokenizer.decode(text_ids, skip_special_tokens=True)
                    if not now.endswith("\ufffd") and now != shown:  # whole characters only
                        yield StreamChunk(text=now[len(shown) :])
                        shown = now
                continue
            num_speech += 1
            if speech_done or token == sid.joint_marker:
                speech_done = speech_done or num_speech > 1  # a leading marker begins speech
                continue
            pending.append(sid.speech_id(token))
            if len(pending) >= speech_chunk:
                yield StreamChunk(speech_token=pending)
                if voice is not None:
                    voice.push(pending)
                    for wav in voice.ready():
                        audio.append(wav)
                        yield StreamChunk(wav=wav)
                pending = []
        if pending:
            yield StreamChunk(speech_token=pending)
            if voice is not None:
                voice.push(pending)
        if voice is not None:
            for wav in voice.finish():
                audio.append(wav)
                yield StreamChunk(wav=wav)

    # ------------------------------------------------------------------ outputs
    def _response(self, ids, kind, think, synthesize) -> Response:
        sid = self.model.llm.ids
        parsed = parse_generation(
            ids, kind, sid, self.quirks.reference_parsing, self.layout.im_end_id
        )
        text = self.tokenizer.decode(parsed.text_ids, skip_special_tokens=True)
        cot, reply_emotion = "", None
        if think != "none":
            full = text
            cot, text = split_think(full)
            # tag think: the reply starts with its reply-emotion tag (docs/labels.md#tag-think)
            if think == "tag":
                tag, rest = split_leading_tag(text.lstrip())
                if tag in REPLY_EMOTION_LABELS:
                    reply_emotion, text = tag, rest
                elif cot:
                    reply_emotion = parse_tag_think(full)["reply_emotion"]
        response = Response(
            text=text.strip(),
            think=cot.strip(),
            token_int=parsed.token_int,
            speech_token=parsed.speech_tokens,
            reply_emotion=reply_emotion,
            ids=[sid.speech_id(i) if sid.is_speech(i) else i for i in ids],
            heads=["speech" if sid.is_speech(i) else "text" for i in ids],
        )
        if synthesize and self.token2wav is not None and response.speech_token:
            response.wav = self.token2wav(response.speech_token)
            response.sample_rate = self.token2wav.fs
        return response

    def _remember(self, request: Request, audio: Optional[torch.Tensor], response: Response):
        """Append the new turn to a :class:`Conversation` given as history."""
        if not isinstance(request.history, Conversation):
            return
        reply = response.token_int
        if self.quirks.reference_parsing:
            reply = decoding_quirks.remembered_reply(reply)
        request.history.add(
            Turn(
                reply_ids=reply,
                speech_tokens=response.speech_token,
                user_audio=audio,
                user_text=request.text,
            )
        )


def _instructions(prompt_config: Optional[Union[str, Path]]) -> dict:
    """Each understanding task's instruction: the first entry of its tag in
    ``prompt_config``, else ``settings.DEFAULT_INSTRUCTIONS``."""
    prompts = load_prompt_config(prompt_config)
    instructions = dict(DEFAULT_INSTRUCTIONS)
    for task in UNDERSTANDING_TASKS:
        tag = TASKS[task].tag
        if tag in prompts:
            instructions[task] = prompts[tag][0]
    return instructions


def _trained_prompt_config(args) -> Optional[str]:
    """The prompt config the model was trained with, if its path still resolves."""
    path = (getattr(args, "preprocessor_conf", None) or {}).get("prompt_config")
    if not path:
        return None
    for candidate in (Path(path), Path(args.config_dir) / path):
        if candidate.exists():
            return str(candidate)
    logging.warning(
        f"prompt_config {path} of the training config was not found; understanding tasks "
        "use the built-in instructions"
    )
    return None
