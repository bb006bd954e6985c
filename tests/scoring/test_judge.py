"""Empathy judge: score parser, rubric, an HTTP stub endpoint (retries), a tiny local LM."""

import json
import logging
from pathlib import Path

import pytest

from espnet2_echat.scoring.judge import (
    DIMENSIONS,
    JudgeError,
    LocalCausalLMJudge,
    OpenAICompatibleJudge,
    Rubric,
    dimensions_for,
    judge_samples,
    parse_score,
)

REPO = Path(__file__).resolve().parents[2]
RUBRIC = REPO / "conf" / "judge" / "echat_eval_v1.yaml"
SECRET = "sk-test-secret-123"


@pytest.mark.parametrize(
    "answer, expected",
    [
        ('{"score": 73, "reason": "warm"}', 73.0),
        ('```json\n{"score": 88.5, "reason": "ok"}\n```', 88.5),
        ('Here you go: {"reason": "fine", "score": "64"} thanks', 64.0),
        ("Score: 42", 42.0),
        ("得分：90", 90.0),
        ("I would give it 85/100.", 85.0),
        (" 77 ", 77.0),
        ("100", 100.0),
        ('{"score": 150}', None),  # out of range
        ('{"score": "high"}', None),
        ("Score: -5", None),
        ("It deserves 7 out of 10", None),
        ("", None),
        ("The reply is good.", None),
    ],
)
def test_parse_score(answer, expected):
    assert parse_score(answer) == expected


def test_rubric_messages_fill_every_field():
    rubric = Rubric.load(RUBRIC)
    assert rubric.version == "echat_eval_v1"
    sample = {
        "question": "我好难过",
        "reply": "别难过",
        "emotion": "<SAD>",
        "age": "<CHILD>",
        "think": "t",
    }
    msgs = rubric.messages("multi", sample)
    assert [m["role"] for m in msgs] == ["system", "user"]
    user = msgs[1]["content"]
    assert (
        "我好难过" in user
        and "别难过" in user
        and "<SAD>" in user
        and "<CHILD>" in user
    )
    assert '{"score": <integer 0-100>' in user  # the JSON example survives str.format
    assert "{" not in user.replace('{"score"', "")  # no unfilled placeholder
    assert dimensions_for(sample) == ["emotion", "age", "multi"]
    assert dimensions_for({"gender": "<&&>"}) == ["multi"]


def _judge(server, sleeps, **kw):
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    return OpenAICompatibleJudge(url, "stub-model", SECRET, sleep=sleeps.append, **kw)


def test_endpoint_retries_then_scores(stub, caplog):
    stub.script = [
        ("status", 429, "0"),
        ("sleep", 0.6),  # client timeout 0.2 s
        ("status", 503),
        ("raw", "this is not json"),
        ("content", "I like it."),  # no score
        ("content", '{"score": 64, "reason": "kind"}'),
    ]
    sleeps = []
    judge = _judge(
        stub, sleeps, timeout=0.2, max_retries=6, backoff=0.01, backoff_max=0.05
    )
    with caplog.at_level(logging.DEBUG):
        answer = judge.score([{"role": "user", "content": "hi"}])
    assert answer.score == 64.0 and answer.attempts == 6
    assert sleeps == [0.01, 0.02, 0.04, 0.05, 0.05]  # exponential, capped
    headers, body = stub.requests[0]
    assert headers["Authorization"] == f"Bearer {SECRET}"
    assert body["model"] == "stub-model" and body["temperature"] == 0
    assert SECRET not in caplog.text and "127.0.0.1" not in caplog.text
    assert SECRET not in repr(judge)


def test_endpoint_gives_up_and_does_not_retry_auth_errors(stub):
    stub.script = [("content", "no number")] * 3
    sleeps = []
    answer = _judge(stub, sleeps, max_retries=2, backoff=0.001).score(
        [{"role": "user", "content": "x"}]
    )
    assert answer.score is None and answer.attempts == 3 and len(sleeps) == 2
    stub.script = [("status", 401)]
    with pytest.raises(JudgeError) as err:
        _judge(stub, []).score([{"role": "user", "content": "x"}])
    assert (
        "401" in str(err.value)
        and SECRET not in str(err.value)
        and "127.0.0.1" not in str(err.value)
    )


def test_judge_samples_means_per_dimension(stub, tmp_path):
    # utt a: emotion + multi; utt b: multi only. Answers in that order (sorted utterances).
    stub.script = [
        ("content", '{"score": 80}'),
        ("content", "Score: 60"),
        ("content", "garbage"),
    ]
    samples = {
        "a": {"reply": "r", "emotion": "<SAD>"},
        "b": {"reply": "r2", "emotion": "<&&>"},
    }
    judge = _judge(stub, [], max_retries=0)
    m = judge_samples(
        judge, Rubric.load(RUBRIC), samples, ["emotion", "multi"], tmp_path / "j.jsonl"
    )
    assert m == {
        "judge_emotion": 80.0,
        "judge_emotion_num": 1.0,
        "judge_emotion_failed": 0.0,
        "judge_multi": 60.0,
        "judge_multi_num": 2.0,
        "judge_multi_failed": 1.0,
    }
    lines = [
        json.loads(x)
        for x in (tmp_path / "j.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [(x["utt"], x["dimension"], x["score"]) for x in lines] == [
        ("a", "emotion", 80.0),
        ("a", "multi", 60.0),
        ("b", "multi", None),
    ]


def test_from_env_requires_variables(monkeypatch):
    monkeypatch.delenv("ECHAT_JUDGE_BASE_URL", raising=False)
    with pytest.raises(JudgeError, match="ECHAT_JUDGE_BASE_URL"):
        OpenAICompatibleJudge.from_env()


def test_local_causal_lm_judge_runs(tmp_path):
    """A random-weight Qwen2 with the vendored tokenizer: proves the local path runs."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(REPO / "conf" / "tokenizer" / "qwen2.5")
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    judge = LocalCausalLMJudge(str(tmp_path), max_new_tokens=4)
    samples = {"a": {"reply": "别难过", "question": "我好难过", "emotion": "<SAD>"}}
    m = judge_samples(judge, Rubric.load(RUBRIC), samples, DIMENSIONS)
    assert m["judge_emotion_num"] == 1.0 and m["judge_multi_num"] == 1.0
    assert m["judge_age_num"] == 0.0
    # random weights write no valid score (or, rarely, a number): both paths are counted
    assert m["judge_multi_failed"] + ("judge_multi" in m) == 1
