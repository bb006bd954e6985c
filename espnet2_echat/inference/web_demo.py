"""A Gradio chat demo around :class:`Speech2Response`.

Record or upload audio (or type text for T2T / TTS), pick the task and think mode, and
see the think text, the reply and its speech tokens; with a token2wav model the reply is
also played. Each browser session keeps its own :class:`Conversation` for S2S and S2T
chat; "New conversation" clears it.

Requests are bounded by :mod:`espnet2_echat.inference.request_limits` (upload size, audio
duration, text length, a bounded queue that answers "busy" when full) and a login can be
required (``--auth_file`` or ``$ECHAT_AUTH``).
"""

from typing import List, Optional, Tuple

import gradio as gr
import numpy as np

from espnet2_echat.data.task_registry import HISTORY_TASKS, TEXT_INPUT_TASKS, THINK_MODES
from espnet2_echat.data.task_registry import TASK_NAMES as TASKS
from espnet2_echat.inference.audio_input import as_float_waveform
from espnet2_echat.inference.conversation import Conversation
from espnet2_echat.inference.native_heap import HeapTrimmer
from espnet2_echat.inference.request_limits import (
    AdmissionQueue,
    Credentials,
    RequestLimits,
    RequestRejected,
    check_audio,
    check_text,
)
from espnet2_echat.inference.speech2response import Speech2Response

# gradio's delete_cache (frequency_s, age_s): temp files (uploads, reply audio) older than
# an hour are removed every 10 minutes, so disk and gradio's file sets stay bounded
TEMP_FILE_CACHE = (600, 3600)


def respond(
    s2r: Speech2Response,
    audio: Optional[Tuple[int, np.ndarray]],
    text: str,
    task: str,
    think: str,
    conversation: Optional[Conversation],
    chat: Optional[List[dict]],
    queue: Optional[AdmissionQueue] = None,
    heap: Optional[HeapTrimmer] = None,
    **decoding,
):
    """One turn: returns (chat messages, think text, reply audio, speech tokens, conversation).

    Errors (no input, unknown task, audio or text beyond the limits, a full queue) are
    shown in the UI as ``gr.Error``. ``heap`` (the server's) returns freed native memory
    after the turn.
    """
    queue = queue or AdmissionQueue(RequestLimits())
    conversation = conversation if conversation is not None else Conversation(s2r.max_history_turns)
    chat = list(chat or [])
    kwargs = dict(task=task, think=think if task in HISTORY_TASKS else "none", **decoding)
    if task in HISTORY_TASKS:
        kwargs["history"] = conversation
    try:
        if task in TEXT_INPUT_TASKS:
            check_text(text, queue.limits)
            with queue.slot():
                response = s2r(text=text, **kwargs)
            user = text
        else:
            if audio is None:
                raise ValueError("record or upload audio first")
            fs, wav = audio
            wav = as_float_waveform(wav, "uploaded audio")
            if wav.ndim == 2:  # gradio gives (samples, channels)
                wav = wav.mean(axis=1)
            seconds = check_audio(wav, int(fs), queue.limits, "uploaded audio")
            with queue.slot():
                response = s2r(speech=wav, fs=int(fs), **kwargs)
            user = f"[audio {seconds:.1f} s]"
    except (ValueError, RequestRejected) as e:
        raise gr.Error(str(e))
    finally:
        if heap is not None:
            heap.maybe_trim()
    reply = response.text or "(no text)"
    if response.speech_token and task != "tts":
        reply += f"  [{len(response.speech_token)} speech tokens]"
    chat += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    wav_out = None
    if response.wav is not None:
        wav_out = (response.sample_rate, response.wav)
    tokens = " ".join(map(str, response.speech_token))
    return chat, response.think, wav_out, tokens, conversation


def build_demo(
    s2r: Speech2Response,
    default_task: str = "s2s",
    limits: Optional[RequestLimits] = None,
    **decoding,
) -> gr.Blocks:
    """The Blocks app; ``decoding`` options apply to every call (e.g. ``max_new_tokens``).
    ``limits`` bound each request and the queue (default :class:`RequestLimits`)."""
    queue = AdmissionQueue(limits or RequestLimits())
    heap = HeapTrimmer()
    # uploads and reply wavs are cached as temp files: delete those older than an hour
    with gr.Blocks(title="OSUM-EChat (ESPnet)", delete_cache=TEMP_FILE_CACHE) as demo:
        gr.Markdown("# OSUM-EChat\nSpeak, pick a task and a think mode, and send.")
        conversation = gr.State(None)
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(sources=["microphone", "upload"], type="numpy", label="Your audio")
                text = gr.Textbox(label="Text input (T2T question / TTS text)")
                task = gr.Dropdown(list(TASKS), value=default_task, label="Task")
                think = gr.Radio(list(THINK_MODES), value="none", label="Think")
                with gr.Row():
                    send = gr.Button("Send", variant="primary")
                    new = gr.Button("New conversation")
            with gr.Column():
                chat = gr.Chatbot(label="Conversation")
                think_out = gr.Textbox(label="Think", interactive=False)
                reply_audio = gr.Audio(label="Reply", interactive=False, autoplay=True)
                tokens = gr.Textbox(label="Speech tokens", interactive=False)

        def on_send(a, t, k, th, conv, history):
            return respond(s2r, a, t, k, th, conv, history, queue, heap, **decoding)

        send.click(
            on_send,
            [audio, text, task, think, conversation, chat],
            [chat, think_out, reply_audio, tokens, conversation],
        )
        new.click(
            lambda: (None, [], "", None, ""),
            None,
            [conversation, chat, think_out, reply_audio, tokens],
        )
    # the admission queue answers "busy"; gradio lets that many calls reach it at once
    demo.queue(
        max_size=queue.limits.max_queued,
        default_concurrency_limit=queue.limits.max_concurrent + queue.limits.max_queued,
    )
    demo.admission_queue = queue
    demo.heap_trimmer = heap
    return demo


def launch(
    train_config: Optional[str] = None,
    model_file: Optional[str] = None,
    model_tag: Optional[str] = None,
    device: str = "cpu",
    dtype: str = "float32",
    reference_compat: bool = False,
    token2wav_train_config: Optional[str] = None,
    token2wav_model_file: Optional[str] = None,
    token2wav_matmul_dtype: str = "float32",
    token2wav_estimator: str = "torch",
    synthesis_nthreads: Optional[int] = None,
    server_name: str = "127.0.0.1",
    server_port: int = 7860,
    share: bool = False,
    limits: Optional[RequestLimits] = None,
    auth_file: Optional[str] = None,
    cachedir: Optional[str] = None,
    compile_step: bool = False,
    int8_heads: bool = False,
    **decoding,
) -> None:
    """Load a model and serve the demo (blocks until interrupted). A login is required
    when ``auth_file`` or ``$ECHAT_AUTH`` names ``user:password`` pairs."""
    limits = limits or RequestLimits()
    credentials = Credentials.load(auth_file)
    kwargs = dict(
        device=device,
        dtype=dtype,
        reference_compat=reference_compat,
        token2wav_train_config=token2wav_train_config,
        token2wav_model_file=token2wav_model_file,
        token2wav_matmul_dtype=token2wav_matmul_dtype,
        token2wav_estimator=token2wav_estimator,
        synthesis_nthreads=synthesis_nthreads,
        compile_step=compile_step,
        int8_heads=int8_heads,
    )
    if model_tag:
        s2r = Speech2Response.from_pretrained(model_tag, cachedir=cachedir, **kwargs)
    else:
        s2r = Speech2Response(train_config, model_file, **kwargs)
    decoding = {k: v for k, v in decoding.items() if v is not None}
    build_demo(s2r, limits=limits, **decoding).launch(
        server_name=server_name,
        server_port=server_port,
        share=share,
        max_file_size=limits.max_upload_bytes,
        auth=credentials.check if credentials.required else None,
    )
