"""Score one decoded set: every metric its files allow (the ``echat_score`` library call).

Inputs: a data dir (docs/data_dir.md) and a decode dir written by
``echat_inference`` (``text``, ``think``, ``token_int``, ``speech_token``, ``wav.scp``).
Outputs under ``out_dir``: ``results.json`` (docs/scoring.md), ``results.md``,
ESPnet's ``score_wer``/``score_cer`` sclite folders, confusion-matrix PNGs, and
``judge.jsonl`` when a judge ran.

======================  =====================================================================
task                    metrics
======================  =====================================================================
asr (+labels)           ``wer``/``cer`` of ``text`` vs data ``text``; ``{kind}_accuracy`` ...
emotion/gender/age/...  ``{kind}_accuracy``, ``{kind}_macro_f1``, ``confusion_{kind}.png``
s2t_chat, t2t, s2s      ``reply_wer``/``reply_cer`` vs data ``reply``; ``reply_emotion_accuracy``
                        (leading tag, when the replies carry such tags); tag-think ``cot_*``
                        fields; judge ``judge_{dim}``
s2s, tts                ``speech_token_len_mean``; generated audio: ``asr_wer``/``asr_cer``
                        (s2s: vs the generated reply text; tts: vs data ``text``), duration
                        and silence
======================  =====================================================================
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from espnet2.fileio.read_text import read_2columns_text

from espnet2_echat.data.cot import parse_tag_think
from espnet2_echat.data.labels import REPLY_EMOTION_LABELS, split_leading_tag
from espnet2_echat.data.task_registry import DECODE_FILES, SAMPLE_FILES
from espnet2_echat.job_list import read_job_list
from espnet2_echat.progress import Tally
from espnet2_echat.safety.atomic import atomic_write_text
from espnet2_echat.scoring import classification, consistency, cot_fields
from espnet2_echat.scoring.judge import (
    DIMENSIONS,
    LocalCausalLMJudge,
    OpenAICompatibleJudge,
    Rubric,
    judge_samples,
    require_success,
)
from espnet2_echat.scoring.results import write_results
from espnet2_echat.scoring.task_spec import CHAT_KINDS, CLI_TASKS, resolve_task
from espnet2_echat.scoring.text_metrics import error_rates

DEFAULT_RUBRIC = (
    Path(__file__).resolve().parents[2] / "conf" / "judge" / "echat_eval_v1.yaml"
)
_DATA_FILES = ("utt2spk",) + tuple(SAMPLE_FILES)
_TAG_THINK_MARK = "用户说的话是"


@dataclass
class ScoreOptions:
    """Options of :func:`score_decode_dir` (the CLI flags of ``echat_score``)."""

    task: Optional[str] = (
        None  # a decoding --task name; default: the data dir's task tag
    )
    think: str = "auto"  # auto | tag | language | none: how to read the decoded `think`
    language: str = "auto"  # auto | en | zh: text normalisation
    asr_model: Optional[str] = (
        None  # Whisper for generated audio (dir, hub name, wheel:whisper-base)
    )
    judge: Optional[str] = None  # None | "endpoint" | a local causal-LM dir
    judge_rubric: Path = DEFAULT_RUBRIC
    judge_dimensions: Sequence[str] = field(default_factory=lambda: list(DIMENSIONS))
    judge_time_budget_s: float = 3600.0  # all judgments of a decode dir together
    cache_dir: Optional[Path] = None
    key_file: Optional[Path] = None  # score only these utterances (first column)
    dnsmos: bool = False  # predicted MOS of generated speech (DNSMOS)


THINK_READINGS = ("auto", "tag", "language", "none")


def read_score_jobs(path: str, opts: ScoreOptions) -> List[Tuple[Path, Path, Path, ScoreOptions]]:
    """``(data dir, decode dir, out dir, options)`` of each line of an ``echat_score --jobs``
    file (:mod:`espnet2_echat.job_list`): ``DATA_DIR DECODE_DIR OUT_DIR TASK THINK KEY_FILE``,
    ``-`` for the default (``opts``' task, think or key file); the other options are ``opts``'."""

    def make(fields: List[str]) -> Tuple[Path, Path, Path, ScoreOptions]:
        data, decode, out, task, think, keys = fields
        if task != "-" and task not in CLI_TASKS:
            raise ValueError(f"unknown task {task!r}; one of {sorted(CLI_TASKS)}")
        if think != "-" and think not in THINK_READINGS:
            raise ValueError(f"think must be one of {THINK_READINGS}, got {think!r}")
        job_opts = replace(
            opts,
            task=opts.task if task == "-" else task,
            think=opts.think if think == "-" else think,
            key_file=opts.key_file if keys == "-" else Path(keys),
        )
        return Path(data), Path(decode), Path(out), job_opts

    fields = ("DATA_DIR", "DECODE_DIR", "OUT_DIR", "TASK", "THINK", "KEY_FILE")
    return read_job_list(path, fields, make)


def read_dir(path: Path, names: Sequence[str]) -> Dict[str, Dict[str, str]]:
    """The Kaldi-style ``uttid value`` files of ``names`` that exist in ``path``."""
    return {n: read_2columns_text(path / n) for n in names if (path / n).is_file()}


def _strip_reply_tag(text: str) -> str:
    tag, rest = split_leading_tag(text)
    return rest if tag in REPLY_EMOTION_LABELS else text


def _think_mode(option: str, think: Mapping[str, str]) -> str:
    if option != "auto":
        return option
    if any(_TAG_THINK_MARK in t for t in think.values()):
        return "tag"
    return "language" if any(t.strip() for t in think.values()) else "none"


def _score_labels(
    kinds: Sequence[str],
    utts: Sequence[str],
    data: Mapping[str, Mapping[str, str]],
    outputs: Mapping[str, str],
    out_dir: Path,
    confusions: Dict[str, dict],
) -> Dict[str, float]:
    """Accuracy and macro-F1 of each label kind; its confusion matrix goes into
    ``confusions`` (``{kind: {"labels", "columns", "matrix"}}``) and a PNG."""
    metrics: Dict[str, float] = {}
    for kind in kinds:
        ref_file = "reply_emotion" if kind == "reply_emotion" else f"utt2{kind}"
        if ref_file not in data:
            raise FileNotFoundError(
                f"the data dir has no {ref_file}, needed to score {kind}"
            )
        refs = {u: data[ref_file][u] for u in utts if u in data[ref_file]}
        result = classification.score_labels(kind, refs, outputs)
        if result is None:
            continue
        metrics.update(classification.as_metrics(result))
        confusions[kind] = {
            "labels": result.labels,
            "columns": result.columns,
            "matrix": result.confusion,
        }
        # Reply emotions are Chinese: their tick labels need CJK fonts; numbers suffice.
        if kind != "reply_emotion":
            classification.plot_confusion(result, out_dir / f"confusion_{kind}.png")
    return metrics


def _build_judge(option: str):
    if option == "endpoint":
        return OpenAICompatibleJudge.from_env()
    return LocalCausalLMJudge(option)


def score_decode_dir(
    data_dir: Path,
    decode_dir: Path,
    out_dir: Path,
    opts: ScoreOptions,
    tally: Optional[Tally] = None,
) -> dict:
    """Score a decode dir against its data dir; writes and returns the results dict.

    ``tally`` gets each utterance's outcome: done, skipped (no output in the decode dir,
    scored as empty) or failed (listed in ``out_dir/errors``).
    """
    data_dir, decode_dir, out_dir = Path(data_dir), Path(decode_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = read_dir(data_dir, _DATA_FILES)
    dec = read_dir(decode_dir, DECODE_FILES)
    if "text" not in dec:
        raise FileNotFoundError(
            f"{decode_dir / 'text'} is missing: not a decode dir of echat_inference"
        )
    key_file = next(
        (n for n in ("wav.scp", "text", "question", "reply") if n in data), None
    )
    if key_file is None:
        raise FileNotFoundError(f"{data_dir}: no wav.scp, text, question or reply file")
    utts = sorted(data[key_file])
    if opts.key_file:
        keys = sorted(read_2columns_text(opts.key_file))
        unknown = [k for k in keys if k not in data[key_file]]
        if unknown:
            raise ValueError(
                f"{opts.key_file}: utterance {unknown[0]} is not in {data_dir / key_file}"
            )
        utts = keys
    spec = resolve_task(data.get("task"), utts, opts.task)
    hyp_text = dec["text"]
    missing = [u for u in utts if u not in hyp_text]
    if missing:
        logging.warning(
            "%s: %d utterances have no output (e.g. %s); scored as empty",
            decode_dir,
            len(missing),
            missing[0],
        )
    metrics: Dict[str, Optional[float]] = {"missing_outputs": float(len(missing))}
    errors: Dict[str, str] = {}
    confusions: Dict[str, dict] = {}
    info = {
        "test_set": data_dir.name,
        "data_dir": str(data_dir),
        "decode_dir": str(decode_dir),
    }

    if spec.kind == "understanding":
        if spec.transcribe:
            refs = _need(data, "text", data_dir, utts)
            metrics.update(
                error_rates(refs, hyp_text, opts.language, out_dir, data.get("utt2spk"))
            )
        metrics.update(
            _score_labels(spec.labels, utts, data, hyp_text, out_dir, confusions)
        )
    if spec.kind in CHAT_KINDS:
        replies = {u: _strip_reply_tag(hyp_text.get(u, "")) for u in utts}
        if "reply" in data:
            refs = _need(data, "reply", data_dir, utts)
            rates = error_rates(
                refs, replies, opts.language, out_dir / "reply", data.get("utt2spk")
            )
            metrics.update({f"reply_{k}": v for k, v in rates.items()})
        leading = {u: split_leading_tag(hyp_text.get(u, ""))[0] for u in utts}
        # Only a model trained with the tag-think processor starts replies with a reply
        # emotion (docs/labels.md#tag-think); without any such tag the accuracy would only say
        # "no tags".
        if "reply_emotion" in data and any(
            t in REPLY_EMOTION_LABELS for t in leading.values()
        ):
            metrics.update(
                _score_labels(
                    ["reply_emotion"], utts, data, leading, out_dir, confusions
                )
            )
        think = dec.get("think", {})
        mode = _think_mode(opts.think, think)
        info["think"] = mode
        if mode == "tag":
            metrics.update(cot_fields.score_tag_think(think, data, utts))
        if opts.judge:
            metrics.update(
                _run_judge(opts, data, utts, replies, hyp_text, think, out_dir)
            )
            info["judge_rubric"] = Rubric.load(opts.judge_rubric).version
    if spec.kind in ("s2s", "tts"):
        if "speech_token" in dec:
            lengths = [len(dec["speech_token"].get(u, "").split()) for u in utts]
            metrics["speech_token_len_mean"] = sum(lengths) / len(lengths)
        if "wav.scp" in dec:
            # a reply of zero speech tokens has no audio by design (token2wav writes none);
            # it is counted, and only replies with tokens must have a wav
            tokens = dec.get("speech_token", {})
            spoken = [u for u in utts if u not in tokens or tokens[u].split()]
            metrics["empty_speech_rate"] = 100.0 * (1 - len(spoken) / len(utts))
            if spec.kind == "tts":
                refs = _need(data, "text", data_dir, spoken)
            else:
                refs = {u: _strip_reply_tag(hyp_text.get(u, "")) for u in spoken}
            transcriber = (
                consistency.load_transcriber(opts.asr_model, opts.cache_dir)
                if opts.asr_model and spoken
                else None
            )
            if spoken:
                metrics.update(
                    consistency.score_consistency(
                        dec["wav.scp"],
                        refs,
                        transcriber,
                        out_dir / "asr",
                        with_dnsmos=opts.dnsmos,
                        errors=errors,
                    )
                )
            info["asr_model"] = opts.asr_model
    info["num_errors"] = len(errors)
    if tally is not None:
        failed = set(errors)
        skipped = set(missing) - failed
        tally.add("failed", len(failed))
        tally.add("skipped", len(skipped))
        tally.add("done", len(set(utts) - failed - skipped))
    results = {
        "task": spec.name,
        "num_utts": len(utts),
        "metrics": metrics,
        "info": info,
    }
    if confusions:
        results["confusion"] = confusions
    atomic_write_text(
        out_dir / "errors", "".join(f"{u} {' '.join(r.split())}\n" for u, r in sorted(errors.items()))
    )
    write_results(results, out_dir)
    return results


def _need(
    data: Mapping[str, Mapping[str, str]], name: str, data_dir: Path, utts
) -> Dict[str, str]:
    if name not in data:
        raise FileNotFoundError(
            f"{data_dir / name} is missing; it is the reference of this task"
        )
    lacking = [u for u in utts if u not in data[name]]
    if lacking:
        raise ValueError(
            f"{data_dir / name}: no entry for utterance {lacking[0]} ({len(lacking)} missing)"
        )
    return {u: data[name][u] for u in utts}


def _run_judge(
    opts, data, utts, replies, hyp_text, think, out_dir: Path
) -> Dict[str, float]:
    rubric = Rubric.load(opts.judge_rubric)
    samples = {}
    for u in utts:
        parsed = parse_tag_think(think.get(u, "")) if think.get(u) else {}
        reply_emotion = split_leading_tag(hyp_text.get(u, ""))[0] or parsed.get(
            "reply_emotion"
        )
        samples[u] = {
            "question": data.get("question", {}).get(u)
            or data.get("text", {}).get(u, ""),
            "reply": replies[u],
            "think": think.get(u, ""),
            "reply_emotion": reply_emotion or "",
            **{
                k: data.get(f"utt2{k}", {}).get(u, "")
                for k in ("emotion", "age", "gender", "event")
            },
        }
    metrics = judge_samples(
        _build_judge(opts.judge),
        rubric,
        samples,
        opts.judge_dimensions,
        out_dir / "judge.jsonl",
        opts.judge_time_budget_s,
    )
    require_success(metrics, out_dir / "judge.jsonl")  # the stage fails, not a silent 0
    return metrics
