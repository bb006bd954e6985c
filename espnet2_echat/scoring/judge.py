"""Empathy judge in the style of EChat-eval: an LLM scores each reply 0-100 per dimension.

Dimensions are ``emotion age gender event multi``. An utterance is judged on a label
dimension when the data dir knows that label (not ``<&&>``), and always on ``multi``.
The rubric (system text, one criterion per dimension, the user template) is a versioned
yaml under ``conf/judge/``.

Two judges share one interface (``complete(messages) -> str``):

* :class:`OpenAICompatibleJudge`: any OpenAI-compatible ``/chat/completions`` endpoint;
  :meth:`OpenAICompatibleJudge.from_env` reads ``ECHAT_JUDGE_BASE_URL``,
  ``ECHAT_JUDGE_API_KEY`` (optional) and ``ECHAT_JUDGE_MODEL``. Neither the URL nor the
  key is ever logged or put in an error message. Timeouts, HTTP 429/5xx and malformed
  answers are retried with exponential backoff (``Retry-After`` is honoured up to the cap).
  The HTTP client is the standard library's, to add no dependency for one POST.
* :class:`LocalCausalLMJudge`: a local transformers causal LM, greedy decoding.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import yaml

from espnet2_echat.progress import progress_bar

DIMENSIONS = ("emotion", "age", "gender", "event", "multi")
ENV_BASE_URL = "ECHAT_JUDGE_BASE_URL"
ENV_API_KEY = "ECHAT_JUDGE_API_KEY"
ENV_MODEL = "ECHAT_JUDGE_MODEL"
UNKNOWN = "<&&>"
Messages = List[Dict[str, str]]

_RE_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
_RE_KEYED = re.compile(
    r"(?:score|得分|分数)\s*[\"']?\s*[:：=]\s*[\"']?\s*(-?\d+(?:\.\d+)?)", re.I
)
_RE_OUT_OF_100 = re.compile(r"(-?\d+(?:\.\d+)?)\s*/\s*100\b")
_RE_BARE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:分|points?)?\s*[.。]?\s*$", re.I)


def _in_range(value: float) -> Optional[float]:
    return value if 0.0 <= value <= 100.0 and math.isfinite(value) else None


def parse_score(answer: str) -> Optional[float]:
    """Read a 0-100 score from a judge's answer; None when there is none or it is out of range.

    Tried in order: a JSON object with a ``score`` key (possibly inside a markdown fence
    or prose), ``score: N`` (also ``得分/分数``), ``N/100``, and an answer that is only a
    number. The first rule that finds a value decides, so a malformed value is not
    silently replaced by some other number in the text.
    """
    if not answer:
        return None
    for blob in _RE_JSON_OBJECT.findall(answer):
        try:
            obj = json.loads(blob)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "score" in obj:
            try:
                return _in_range(float(obj["score"]))
            except (TypeError, ValueError):
                return None
    for pattern in (_RE_KEYED, _RE_OUT_OF_100, _RE_BARE):
        m = pattern.search(answer)
        if m:
            return _in_range(float(m.group(1)))
    return None


@dataclass
class Rubric:
    """A versioned judge rubric (see ``conf/judge/echat_eval_v1.yaml``)."""

    version: str
    system: str
    user_template: str
    dimensions: Dict[str, str]

    @classmethod
    def load(cls, path: Path) -> "Rubric":
        """Read and check a rubric yaml."""
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
        for key in ("version", "system", "user_template", "dimensions"):
            if key not in raw:
                raise ValueError(f"{path}: rubric lacks the key {key!r}")
        missing = set(DIMENSIONS) - set(raw["dimensions"])
        if missing:
            raise ValueError(f"{path}: rubric lacks the dimensions {sorted(missing)}")
        return cls(
            str(raw["version"]),
            raw["system"],
            raw["user_template"],
            dict(raw["dimensions"]),
        )

    def messages(self, dimension: str, sample: Mapping[str, str]) -> Messages:
        """Chat messages that ask for one dimension's score of one sample."""
        fields = {
            k: sample.get(k) or "unknown"
            for k in (*DIMENSIONS[:4], "question", "reply")
        }
        fields["think"] = sample.get("think") or ""
        fields["reply_emotion"] = sample.get("reply_emotion") or "unknown"
        criterion = self.dimensions[dimension].format(**fields)
        user = self.user_template.format(
            dimension=dimension, criterion=criterion, **fields
        )
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": user},
        ]


class JudgeError(RuntimeError):
    """The judge endpoint refused a request in a way retrying cannot fix."""


class OpenAICompatibleJudge:
    """Chat-completions client with retries; never reveals the URL or the key."""

    RETRY_STATUS = (408, 409, 429, 500, 502, 503, 504)

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: Optional[str] = None,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        backoff_max: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self._sleep = sleep

    def __repr__(self) -> str:  # keep URL and key out of logs and tracebacks
        return f"OpenAICompatibleJudge(model={self.model!r})"

    @classmethod
    def from_env(cls, **kwargs) -> "OpenAICompatibleJudge":
        """Build from ``$ECHAT_JUDGE_BASE_URL``, ``$ECHAT_JUDGE_MODEL``,
        ``$ECHAT_JUDGE_API_KEY``."""
        for var in (ENV_BASE_URL, ENV_MODEL):
            if not os.environ.get(var):
                raise JudgeError(
                    f"the endpoint judge needs the environment variable {var}"
                )
        return cls(
            os.environ[ENV_BASE_URL],
            os.environ[ENV_MODEL],
            os.environ.get(ENV_API_KEY),
            **kwargs,
        )

    def _post(self, messages: Messages) -> str:
        body = json.dumps(
            {"model": self.model, "messages": messages, "temperature": 0}
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(
            self._url, data=body, headers=headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            payload = json.loads(response.read().decode("utf-8"))
        return payload["choices"][0]["message"]["content"]

    def _wait(self, attempt: int, retry_after: Optional[str] = None) -> None:
        delay = min(self.backoff * 2**attempt, self.backoff_max)
        if retry_after:
            try:
                delay = min(max(delay, float(retry_after)), self.backoff_max)
            except ValueError:
                pass
        self._sleep(delay)

    def score(self, messages: Messages) -> "JudgeAnswer":
        """Ask until a valid score comes back or the retries are spent."""
        answer, problem = "", ""
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                answer = self._post(messages)
            except urllib.error.HTTPError as exc:
                if exc.code not in self.RETRY_STATUS:
                    raise JudgeError(
                        f"judge endpoint answered HTTP {exc.code}; not retried"
                    ) from None
                problem, retry_after = f"HTTP {exc.code}", exc.headers.get(
                    "Retry-After"
                )
            except (
                urllib.error.URLError,
                socket.timeout,
                TimeoutError,
                ConnectionError,
            ) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, (ConnectionRefusedError, socket.gaierror)):
                    # nothing listens there (or the name does not resolve): retrying for
                    # half a minute per utterance and dimension cannot help
                    raise JudgeError(
                        f"judge endpoint unreachable ({type(reason).__name__}); not retried"
                    ) from None
                problem = f"no answer ({type(reason).__name__})"
            except (
                json.JSONDecodeError,
                KeyError,
                IndexError,
                TypeError,
                UnicodeDecodeError,
            ):
                problem = "malformed response body"
            else:
                value = parse_score(answer)
                if value is not None:
                    return JudgeAnswer(value, answer, attempt + 1)
                problem = "no 0-100 score in the answer"
            logging.warning(
                "judge attempt %d/%d: %s", attempt + 1, self.max_retries + 1, problem
            )
            if attempt < self.max_retries:
                self._wait(attempt, retry_after)
        return JudgeAnswer(None, answer, self.max_retries + 1, problem)


class LocalCausalLMJudge:
    """A local transformers causal LM as judge (greedy, one try: retrying gives the same).

    The assistant turn is started with ``answer_prefix`` (default ``{"score": ``), so that a
    small model only has to complete the number; the prefix is part of the parsed answer.
    CPU runs in float32 (bfloat16 matmuls are slow there).
    """

    def __init__(
        self,
        model_dir: str,
        max_new_tokens: int = 16,
        device: str = "cpu",
        answer_prefix: str = '{"score": ',
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        dtype = torch.float32 if device == "cpu" else "auto"
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
        self.model.to(device).eval()
        self.max_new_tokens = max_new_tokens
        self.device = device
        self.answer_prefix = answer_prefix

    def score(self, messages: Messages) -> "JudgeAnswer":
        """Generate an answer and parse its score."""
        import torch

        if self.tokenizer.chat_template:
            prompt = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        else:
            prompt = "\n\n".join(m["content"] for m in messages) + "\n\n"
        prompt += self.answer_prefix
        inputs = self.tokenizer(prompt, return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
        answer = self.answer_prefix + self.tokenizer.decode(
            out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True
        )
        value = parse_score(answer)
        return JudgeAnswer(
            value,
            answer,
            1,
            None if value is not None else "no 0-100 score in the answer",
        )


@dataclass
class JudgeAnswer:
    """One judged (utterance, dimension): the score (None if never valid) and the raw answer."""

    score: Optional[float]
    answer: str
    attempts: int
    problem: Optional[str] = None


def require_success(metrics: Mapping[str, float], log_path: Optional[Path] = None) -> None:
    """Raise :class:`JudgeError` when judgments were asked for and none gave a score."""
    asked = sum(v for k, v in metrics.items() if k.endswith("_num"))
    failed = sum(v for k, v in metrics.items() if k.endswith("_failed"))
    if asked and failed == asked:
        where = f"; answers in {log_path}" if log_path else ""
        raise JudgeError(f"judge: none of {int(asked)} judgments gave a score{where}")


def dimensions_for(
    sample: Mapping[str, str], wanted: Sequence[str] = DIMENSIONS
) -> List[str]:
    """The dimensions an utterance is judged on: known labels, and ``multi``."""
    dims = [
        d for d in wanted if d != "multi" and sample.get(d) not in (None, "", UNKNOWN)
    ]
    return dims + (["multi"] if "multi" in wanted else [])


def judge_samples(
    judge,
    rubric: Rubric,
    samples: Mapping[str, Mapping[str, str]],
    dimensions: Sequence[str] = DIMENSIONS,
    log_path: Optional[Path] = None,
    time_budget_s: float = 3600.0,
    clock: Callable[[], float] = time.monotonic,
) -> Dict[str, float]:
    """Judge every sample on its dimensions; mean score per dimension (0-100).

    Returns ``judge_{dim}`` (mean over valid scores), ``judge_{dim}_num`` and
    ``judge_{dim}_failed`` (answers with no valid score, and judgments left out when the
    time budget is spent). With ``log_path`` every answer is written as one JSON line
    (utterance, dimension, score, attempts, answer), flushed as it is made, so a killed
    run keeps what was judged.

    Raises:
        JudgeError: the endpoint is unreachable or refuses (see :func:`require_success`
            for a stage that must fail when no judgment succeeded).
    """
    unknown = set(dimensions) - set(DIMENSIONS)
    if unknown:
        raise ValueError(
            f"unknown judge dimensions {sorted(unknown)}; expected some of {DIMENSIONS}"
        )
    scores: Dict[str, List[float]] = {d: [] for d in dimensions}
    failed = {d: 0 for d in dimensions}
    log = open(log_path, "w", encoding="utf-8") if log_path else None
    deadline = clock() + time_budget_s
    skipped = 0
    bar = progress_bar(len(samples), "judging")
    try:
        for utt in sorted(samples):
            bar.update(1)
            for dim in dimensions_for(samples[utt], dimensions):
                if clock() > deadline:
                    failed[dim] += 1
                    skipped += 1
                    continue
                result = judge.score(rubric.messages(dim, samples[utt]))
                if result.score is None:
                    failed[dim] += 1
                else:
                    scores[dim].append(result.score)
                if log:
                    record = {"utt": utt, "dimension": dim, **result.__dict__}
                    log.write(json.dumps(record, ensure_ascii=False) + "\n")
                    log.flush()
    finally:
        bar.close()
        if log:
            log.close()
    if skipped:
        logging.warning(f"judge: time budget of {time_budget_s:g} s spent; {skipped} not judged")

    metrics: Dict[str, float] = {}
    for dim in dimensions:
        if scores[dim]:
            metrics[f"judge_{dim}"] = sum(scores[dim]) / len(scores[dim])
        metrics[f"judge_{dim}_num"] = float(len(scores[dim]) + failed[dim])
        metrics[f"judge_{dim}_failed"] = float(failed[dim])
    return metrics
