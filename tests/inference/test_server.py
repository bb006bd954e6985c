"""The HTTP server (``inference/server.py``) and its continuous batcher on the tiny model.

Every answer is compared with the eager single-request answer of ``Speech2Response``
(greedy decoding): text, CoT, text ids and speech ids.
"""

import base64
import io
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from espnet2_echat.inference.continuous_batching import ContinuousBatcher  # noqa: E402
from espnet2_echat.inference.request_limits import Credentials, RequestLimits  # noqa: E402
from espnet2_echat.inference.server import DecodeBudget, EChatServer  # noqa: E402
from espnet2_echat.inference.server_protocol import ThinkSplitter  # noqa: E402
from espnet2_echat.inference.speech2response import Request  # noqa: E402

GREEDY = dict(do_sample=False, max_new_tokens=10, max_new_speech_tokens=14)
AUTH = ("alice", "secret")


def wav_b64(wav) -> str:
    buf = io.BytesIO()
    sf.write(buf, np.asarray(wav), 16000, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode()


def pcm16(wav):
    """The waveform as the server reads a 16-bit WAV back."""
    return (np.clip(np.asarray(wav), -1, 1) * 32767).astype(np.int16).astype(np.float32) / 32768


def body(task, wav=None, text=None, think="none", stream=False):
    content = []
    if wav is not None:
        content.append({"type": "input_audio", "input_audio": {"data": wav_b64(wav), "format": "wav"}})
    if text is not None:
        content.append({"type": "text", "text": text})
    return {"messages": [{"role": "user", "content": content}], "task": task, "think": think,
            "stream": stream, "temperature": 0, "max_tokens": GREEDY["max_new_tokens"],
            "max_speech_tokens": GREEDY["max_new_speech_tokens"]}


def read_answer(resp):
    """(echat fields, streamed speech ids or None) of a JSON or server-sent-events answer."""
    assert resp.status_code == 200, resp.text
    if not resp.headers["content-type"].startswith("text/event-stream"):
        return resp.json()["echat"], None
    events = [line[6:] for line in resp.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert not [c for c in chunks if "error" in c], chunks
    streamed = [t for c in chunks for t in c["choices"][0]["delta"].get("speech_token", [])]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    return chunks[-1]["echat"], streamed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(fixed_s2r):
    """The server on a loopback port (4 rows, 4 waiting, a login), and its base URL."""
    server = EChatServer(
        fixed_s2r,
        RequestLimits(max_concurrent=4, max_queued=4, max_audio_seconds=10),
        Credentials([AUTH]),
        DecodeBudget(max_new_tokens=50, max_new_speech_tokens=60),
    )
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(server.app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not uv.started and time.time() < deadline:
        time.sleep(0.05)
    yield server, f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)
    server.close()


def cases(wavs):
    return [
        ("s2s", wavs[0], None, "none", True),
        ("asr", wavs[1], None, "none", False),
        ("t2t", None, "Hello there.", "none", True),
        ("tts", None, "Hi.", "none", False),
        ("s2s", wavs[2], None, "tag", True),
        ("s2t_chat", wavs[1], None, "language", False),
        ("emotion", wavs[0], None, "none", True),
    ]


def eager(s2r, task, wav, text, think):
    speech = None if wav is None else pcm16(wav)
    return s2r(speech=speech, text=text, task=task, think=think, **GREEDY)


def same(fields, response):
    assert fields["speech_token"] == response.speech_token
    assert fields["token_int"] == response.token_int
    assert (fields["text"], fields["think"]) == (response.text, response.think)


@pytest.mark.reference
def test_concurrent_answers_equal_single_requests(served, fixed_s2r, wavs):
    server, url = served
    todo = cases(wavs)
    expected = [eager(fixed_s2r, *c[:4]) for c in todo]
    assert any(e.speech_token for e in expected) and any(e.token_int for e in expected)
    peak_before = server.batcher.peak_batch
    with httpx.Client(auth=AUTH, timeout=120) as client, ThreadPoolExecutor(len(todo)) as pool:
        def send(case):
            task, wav, text, think, stream = case
            return client.post(f"{url}/v1/chat/completions", json=body(task, wav, text, think, stream))

        answers = list(pool.map(send, todo))
    for case, resp, want in zip(todo, answers, expected):
        fields, streamed = read_answer(resp)
        same(fields, want)
        if streamed is not None:
            assert streamed == want.speech_token
    assert server.batcher.peak_batch > 1 or peak_before > 1  # they were decoded together


@pytest.mark.reference
def test_request_joins_a_running_batch(fixed_s2r, wavs, monkeypatch):
    llm = fixed_s2r.model.llm
    new_cache = llm.new_cache

    def nan_filled(*args):  # what uninitialised memory may hold in the padding columns
        cache = new_cache(*args)
        for t in cache.keys + cache.values:
            t.fill_(float("nan"))
        return cache

    monkeypatch.setattr(llm, "new_cache", nan_filled)
    batcher = ContinuousBatcher(llm, max_batch=4, headroom=3)
    first = (Request(pcm16(wavs[0])), "s2s", "none")
    late = (Request(text="Good morning."), "t2t", "none")
    streams = [batcher.submit(lambda r=first: fixed_s2r.prepare_job(*r, **GREEDY))]
    for _ in range(3):
        batcher.step()
    streams.append(batcher.submit(lambda r=late: fixed_s2r.prepare_job(*r, **GREEDY)))
    while batcher.busy:
        batcher.step()
    assert streams[0].batch_sizes[:4] == [1, 1, 1, 2]  # the late one joined at step 4
    assert streams[1].batch_sizes[0] == 2
    sid = fixed_s2r.model.llm.ids
    for stream, (request, task, think) in zip(streams, (first, late)):
        want = fixed_s2r.batch([request], task=task, think=think, **GREEDY)[0].ids
        got = [sid.speech_id(i) if sid.is_speech(i) else i for i in stream]
        assert got == want


@pytest.mark.reference
def test_multipart_upload(served, fixed_s2r, wavs):
    _, url = served
    buf = io.BytesIO()
    sf.write(buf, wavs[1].numpy(), 16000, format="WAV", subtype="PCM_16")
    form = {"task": "asr", "temperature": "0", "max_tokens": "10"}
    with httpx.Client(auth=AUTH, timeout=60) as client:
        resp = client.post(f"{url}/v1/audio/chat", data=form,
                           files={"file": ("a.wav", buf.getvalue(), "audio/wav")})
    fields, _ = read_answer(resp)
    same(fields, eager(fixed_s2r, "asr", wavs[1], None, "none"))


@pytest.mark.reference
def test_login_required(served, wavs):
    _, url = served
    req = body("t2t", text="Hi.")
    with httpx.Client(timeout=60) as client:
        none = client.post(f"{url}/v1/chat/completions", json=req)
        wrong = client.post(f"{url}/v1/chat/completions", json=req, auth=("alice", "nope"))
        bearer = client.post(f"{url}/v1/chat/completions", json=req,
                             headers={"Authorization": "Bearer alice:secret"})
    assert none.status_code == 401 and "login required" in none.json()["error"]["message"]
    assert none.headers["www-authenticate"].startswith("Basic")
    assert wrong.status_code == 401 and "wrong user or password" in wrong.text
    assert bearer.status_code == 200


@pytest.mark.reference
def test_bad_requests_are_refused_with_reasons(served, wavs):
    _, url = served
    too_long = np.zeros(16000 * 11, dtype=np.float32)
    with httpx.Client(auth=AUTH, timeout=60) as client:
        post = lambda b: client.post(f"{url}/v1/chat/completions", json=b)  # noqa: E731
        long_audio = post(body("asr", wav=too_long))
        unknown = post(body("sing", text="la"))
        no_audio = post(body("asr", text="hi"))
        budget = post({**body("t2t", text="hi"), "max_tokens": 51})
        history = post({"messages": [{"role": "user", "content": "a"}] * 2})
    assert long_audio.status_code == 413 and "exceeds the limit of 10 s" in long_audio.text
    assert unknown.status_code == 400 and "'sing'" in unknown.text
    assert no_audio.status_code == 400 and "needs audio input" in no_audio.text
    assert budget.status_code == 400 and "limit of 50" in budget.text
    assert history.status_code == 400 and "one user turn" in history.text


@pytest.mark.reference
def test_busy_when_queue_is_full(served):
    server, url = served
    limits = server.limits
    held, release = [], threading.Event()

    def occupy():  # a running or waiting request, as far as the admission queue knows
        with server.admission.slot():
            release.wait(30)

    for _ in range(limits.max_concurrent + limits.max_queued):
        held.append(threading.Thread(target=occupy))
        held[-1].start()
    deadline = time.time() + 10
    while server.admission.admitted < limits.max_concurrent + limits.max_queued:
        assert time.time() < deadline
        time.sleep(0.01)
    try:
        with httpx.Client(auth=AUTH, timeout=60) as client:
            resp = client.post(f"{url}/v1/chat/completions", json=body("t2t", text="Hi."))
    finally:
        release.set()
        for t in held:
            t.join()
    assert resp.status_code == 503 and "busy" in resp.json()["error"]["message"]
    with httpx.Client(auth=AUTH, timeout=60) as client:  # free again
        assert client.post(f"{url}/v1/chat/completions", json=body("t2t", text="Hi.")).status_code == 200


@pytest.mark.parametrize("cuts", [(1,), (3, 9), (2, 7, 8, 20), tuple(range(1, 40))])
def test_think_splitter_streams_cot_and_reply_apart(cuts):
    text = " <think>sad voice, comfort</think end>I am sorry.</think>"
    splitter, think, reply = ThinkSplitter(), "", ""
    for a, b in zip((0,) + cuts, cuts + (len(text),)):
        t, r = splitter.feed(text[a:b])
        think, reply = think + t, reply + r
    think += splitter.finish()
    assert (think, reply) == ("sad voice, comfort", "I am sorry.</think>")
    splitter = ThinkSplitter()
    assert splitter.feed("<th") == ("", "") and splitter.feed("is is a reply") == ("", "<this is a reply")
    splitter = ThinkSplitter()
    # the last 12 characters (the longest end marker) wait: they may begin "</think end>"
    assert splitter.feed("<think>cut off before the e") == ("cut off ", "")
    assert splitter.finish() == "before the e"
