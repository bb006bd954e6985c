"""The demo and the judge under bad input and faults: request limits, a bounded queue
that answers "busy", optional login; a judge that gives up fast on a dead endpoint, keeps
a time budget, flushes each judgment and fails the stage when none succeeded; scoring
that keeps every utterance it can read."""

import json
import socket
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from espnet2_echat.inference.request_limits import (
    AdmissionQueue,
    Busy,
    Credentials,
    RequestLimits,
    RequestRejected,
    TooLarge,
    Unauthorized,
    check_audio,
    check_text,
    check_upload_size,
)
from espnet2_echat.scoring.judge import (
    JudgeError,
    OpenAICompatibleJudge,
    Rubric,
    judge_samples,
    require_success,
)
from espnet2_echat.scoring.score_decode import DEFAULT_RUBRIC

LIMITS = RequestLimits(max_audio_seconds=2.0, max_upload_bytes=1000, max_text_chars=10,
                       max_concurrent=1, max_queued=1, queue_timeout_s=0.3)

REFUSALS = {
    "long_audio": (lambda: check_audio(np.zeros(16000 * 3), 16000, LIMITS), TooLarge, "3.0 s exceeds the limit of 2 s"),
    "short_audio": (lambda: check_audio(np.zeros(10), 16000, LIMITS), RequestRejected, "shorter than 0.1 s"),
    "zero_rate": (lambda: check_audio(np.zeros(100), 0, LIMITS), RequestRejected, "sample rate must be a positive integer"),
    "upload": (lambda: check_upload_size(1001, LIMITS), TooLarge, "1001 bytes exceeds the limit of 1000"),
    "text": (lambda: check_text("x" * 11, LIMITS), TooLarge, "11 characters exceeds the limit of 10"),
    "bad_limits": (lambda: RequestLimits(max_concurrent=0), ValueError, "max_concurrent must be >= 1"),
    "bad_duration_limits": (lambda: RequestLimits(max_audio_seconds=0.05), ValueError, "min_audio_seconds < max_audio_seconds"),
    "auth_entry": (lambda: Credentials.parse("alice"), ValueError, "entry 1: expected user:password"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_request_refusals_name_the_limit(case):
    call, error, message = REFUSALS[case]
    with pytest.raises(error, match=message):
        call()


def test_statuses():
    assert (TooLarge.status, Busy.status, Unauthorized.status, RequestRejected.status) == (413, 503, 401, 400)


def test_queue_answers_busy_at_once_when_full_and_after_a_timeout():
    queue = AdmissionQueue(LIMITS)  # one running, one waiting
    running, release = threading.Event(), threading.Event()

    def hold():
        with queue.slot():
            running.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    running.wait(5)
    waiter_error = []

    def wait_for_slot():
        try:
            with queue.slot():
                pass
        except Busy as e:
            waiter_error.append(e)

    waiter = threading.Thread(target=wait_for_slot)
    waiter.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    with pytest.raises(Busy, match="busy: 1 request\\(s\\) running and 1 waiting"):
        with queue.slot():
            pass
    assert time.monotonic() - t0 < 0.1  # refused without waiting
    waiter.join(5)
    assert waiter_error and "waited 0.3 s" in str(waiter_error[0])
    release.set()
    holder.join(5)
    with queue.slot():  # free again
        assert queue.admitted == 1
    assert queue.admitted == 0 and queue.refused == 2 and queue.peak == 2


def test_credentials_basic_header():
    import base64

    creds = Credentials.parse("alice:s3cret,bob:pw")
    ok = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    creds.check_basic(ok)
    for header, message in ((None, "login required"), ("Bearer x", "login required"),
                            ("Basic !!!", "malformed"),
                            ("Basic " + base64.b64encode(b"alice:wrong").decode(), "wrong user")):
        with pytest.raises(Unauthorized, match=message):
            creds.check_basic(header)
    Credentials().check_basic(None)  # no login configured: open


@pytest.mark.reference
@pytest.mark.parametrize("case", ["too_long", "nan", "text_too_long", "busy"])
def test_demo_refusals_reach_the_user(fixed_s2r, wavs, case):
    gr = pytest.importorskip("gradio")
    from espnet2_echat.inference.web_demo import respond

    queue = AdmissionQueue(LIMITS)
    audio = (16000, (wavs[0].numpy()[:16000] * 32767).astype("int16"))
    text, task, message = "", "asr", ""
    if case == "too_long":
        audio, message = (16000, np.zeros(16000 * 3, dtype=np.int16)), "exceeds the limit of 2 s"
    elif case == "nan":
        audio, message = (16000, np.full(16000, np.nan, dtype=np.float32)), "NaN or infinite"
    elif case == "text_too_long":
        text, task, message = "x" * 50, "t2t", "50 characters exceeds"
    else:
        queue.admitted, message = 2, "busy"
    with pytest.raises(gr.Error, match=message):
        respond(fixed_s2r, audio, text, task, "none", None, None, queue, max_new_tokens=2, do_sample=False)


def _refusing_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # closed again: nothing listens


def test_judge_gives_up_at_once_on_a_refused_connection():
    sleeps = []
    judge = OpenAICompatibleJudge(_refusing_url(), "m", max_retries=5, sleep=sleeps.append)
    t0 = time.monotonic()
    with pytest.raises(JudgeError, match="unreachable \\(ConnectionRefusedError\\); not retried"):
        judge.score([{"role": "user", "content": "x"}])
    assert time.monotonic() - t0 < 2 and sleeps == []


class _Scripted:
    """A judge answering from a list; an exception in the list is raised (a kill)."""

    def __init__(self, answers):
        self.answers = list(answers)

    def score(self, messages):
        from espnet2_echat.scoring.judge import JudgeAnswer

        a = self.answers.pop(0)
        if isinstance(a, BaseException):
            raise a
        return JudgeAnswer(a, str(a), 1, None if a is not None else "no score")


SAMPLES = {u: {"reply": "r", "emotion": "<SAD>"} for u in ("a", "b", "c")}


def test_judgments_are_flushed_as_made(tmp_path):
    log = tmp_path / "judge.jsonl"
    with pytest.raises(KeyboardInterrupt):
        judge_samples(_Scripted([70.0, 80.0, KeyboardInterrupt()]), Rubric.load(DEFAULT_RUBRIC),
                      SAMPLES, ["emotion"], log)
    assert [json.loads(x)["score"] for x in log.read_text().splitlines()] == [70.0, 80.0]


def test_time_budget_and_no_success_fails(tmp_path):
    ticks = iter([0.0, 0.0, 5.0, 11.0, 12.0, 13.0])
    m = judge_samples(_Scripted([None, None]), Rubric.load(DEFAULT_RUBRIC), SAMPLES, ["emotion"],
                      tmp_path / "j.jsonl", time_budget_s=10.0, clock=lambda: next(ticks))
    assert m == {"judge_emotion_num": 3.0, "judge_emotion_failed": 3.0}
    with pytest.raises(JudgeError, match="none of 3 judgments gave a score; answers in .*j.jsonl"):
        require_success(m, tmp_path / "j.jsonl")
    require_success({"judge_emotion": 50.0, "judge_emotion_num": 2.0, "judge_emotion_failed": 1.0})


def test_scoring_keeps_readable_wavs_and_lists_the_rest(tmp_path, capsys):
    from espnet2_echat.bin.echat_score import main

    data, dec = tmp_path / "data", tmp_path / "dec"
    data.mkdir()
    dec.mkdir()
    sf.write(tmp_path / "ok.wav", 0.1 * np.sin(np.arange(16000) / 3).astype("float32"), 16000)
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    (data / "task").write_text("a <TEXT2TOKEN>\nb <TEXT2TOKEN>\nc <TEXT2TOKEN>\n")
    (data / "text").write_text("a hi\nb hi\nc hi\n")
    (dec / "text").write_text("a \nb \nc \n")
    (dec / "speech_token").write_text("a 1 2\nb 1 2\nc 1 2\n")
    (dec / "wav.scp").write_text(f"a {tmp_path}/ok.wav\nb {tmp_path}/bad.wav\nc {tmp_path}/ok.wav\n")
    rc = main(["--data_dir", str(data), "--decode_dir", str(dec), "--out_dir", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert rc == 1 and "1 of 3 utterances could not be scored" in err
    assert "echat_score: done 2, skipped 0, failed 1 in " in err
    results = json.loads((tmp_path / "s" / "results.json").read_text())
    assert results["metrics"]["duration_mean_s"] == pytest.approx(1.0)  # the two good ones
    assert (tmp_path / "s" / "errors").read_text().startswith("b utterance b: cannot read generated audio")
