"""Greedy decoding through the Python API reproduces the reference's decodes exactly.

Golden values: ``osum_echat_tiny/expected.json`` ``utterances[i].tasks.<task>`` (made by the
reference's own generate functions, fixtures README "Decoding"). The fixture's budgets are
passed as logits-processor / stopping-criteria arguments: text tasks stop after 20 ids,
TTS after 30, S2S gets ``<|im_end|>`` forced as the 21st id and stops 30 ids later.
"""

import pytest
import torch

from espnet2_echat.inference.logits_processors import (
    ForceTextEndLogitsProcessor,
    SpeechBudgetCriteria,
    TextBudgetCriteria,
)
from tests.helpers import V, reference_fixtures_dir

pytestmark = pytest.mark.reference


def _golden_utterances():
    """Indices of the golden set's utterances and each one's decoded task keys, from its
    own ``expected.json`` (an absent set gives one placeholder: the tests then skip)."""
    import json

    path = reference_fixtures_dir() / "osum_echat_tiny" / "expected.json"
    if not path.is_file():
        return [0], {0: []}
    utts = json.loads(path.read_text(encoding="utf-8"))["utterances"]
    return list(range(len(utts))), {i: sorted(u.get("tasks", {})) for i, u in enumerate(utts)}


UTTS, UTT_TASKS = _golden_utterances()
# fixture task key -> (task, think)
FIXTURE_TASKS = {
    "asr": ("asr", "none"),
    "ser_paralinguistic": ("emotion", "none"),
    "s2t_chat": ("s2t_chat", "none"),
    "s2t_chat_think": ("s2t_chat", "language"),
    "s2s": ("s2s", "none"),
    "s2s_think": ("s2s", "tag"),
    "t2t": ("t2t", "none"),
    "tts": ("tts", "none"),
}
HEADS = {"llama_model.lm_head": "text", "speech_head": "speech"}


def fixture_budgets(task):
    """The harness's budgets as API arguments."""
    if task == "s2s":
        return dict(
            logits_processor=[ForceTextEndLogitsProcessor(20, V)],
            stopping_criteria=[SpeechBudgetCriteria(30, V)],
        )
    if task == "tts":
        return dict(stopping_criteria=[SpeechBudgetCriteria(30, V)])
    return dict(stopping_criteria=[TextBudgetCriteria(20, V)])


def decode_fixture(s2r, expected, wavs, i, key, **kwargs):
    utt = expected["utterances"][i]
    spec = utt["tasks"][key]
    task, think = FIXTURE_TASKS[key]
    segments = spec["llm_input"]["segments"]
    instruction = next((s["text"] for s in segments if s["name"] == "task instruction"), None)
    inputs = dict(text=utt["text"]) if task in ("t2t", "tts") else dict(speech=wavs[i].numpy())
    return (
        s2r(
            **inputs,
            task=task,
            think=think,
            prompt=instruction,
            do_sample=False,
            repetition_penalty=1.0,
            **fixture_budgets(task),
            **kwargs,
        ),
        spec,
    )


@pytest.fixture(scope="module")
def decodes(compat_s2r, expected, wavs):
    return {
        (i, key): decode_fixture(compat_s2r, expected, wavs, i, key, output_scores=True)
        for i in UTTS
        for key in FIXTURE_TASKS
        if key in UTT_TASKS[i]
    }


def test_golden_set_decodes_the_tasks_known_here(expected):
    """Every task the golden set decoded is one these tests reproduce."""
    unknown = {k for u in expected["utterances"] for k in u.get("tasks", {})} - set(FIXTURE_TASKS)
    assert not unknown, f"golden set decodes tasks not mapped in FIXTURE_TASKS: {sorted(unknown)}"


@pytest.mark.parametrize("key", sorted(FIXTURE_TASKS))
@pytest.mark.parametrize("i", UTTS)
def test_ids_heads_and_step_logits(decodes, i, key):
    if (i, key) not in decodes:
        pytest.skip(f"the golden set did not decode utterance {i} as {key}")
    response, spec = decodes[(i, key)]
    assert response.ids == spec["output_token_ids"]
    assert response.heads == [HEADS[h] for h in spec["head_per_generated_token"]]
    assert len(response.scores) == len(spec["steps"])
    for scores, step in zip(response.scores, spec["steps"]):
        head = scores[torch.isfinite(scores)].double()
        assert head.numel() == step["logits_width"]
        top = head.topk(5)
        assert (top.values - torch.tensor(step["raw_top5_logits"]).double()).abs().max() <= 1e-4
        assert abs(float(torch.logsumexp(head, 0)) - step["raw_logsumexp"]) <= 1e-4


@pytest.mark.parametrize("i", UTTS)
def test_compat_parsing_matches_reference_return(decodes, i):
    """S2S: text without the last id before <|im_end|>, speech = ids[eos+1:-1][1:]; TTS: the
    caller drops the last id."""
    if (i, "s2s") not in decodes or (i, "tts") not in decodes:
        pytest.skip(f"the golden set did not decode utterance {i} as s2s and tts")
    s2s, spec = decodes[(i, "s2s")]
    ret = spec["reference_return"]
    assert s2s.text == ret["output_text"][0].strip()
    assert s2s.speech_token == ret["speech_res"][1:]
    caller = ret["caller_string(infer_runtime.do_s2s)"]
    assert caller.split("|")[1] == str(s2s.speech_token)
    tts, spec = decodes[(i, "tts")]
    assert (
        tts.speech_token
        == spec["reference_return"]["caller_tokens(infer_runtime.do_t2s: drop last)"]
    )


@pytest.mark.parametrize("i", UTTS)
def test_fixed_parsing_keeps_every_id(fixed_s2r, expected, wavs, i):
    """Without reference_compat the last text id and every speech id are kept."""
    if "s2s" not in UTT_TASKS[i]:
        pytest.skip(f"the golden set did not decode utterance {i} as s2s")
    response, spec = decode_fixture(
        fixed_s2r, expected, wavs, i, "s2s", speech_ngram_blocking=False
    )
    assert response.ids == spec["output_token_ids"]
    marker = expected["constants"]["speech_boundary_id"]
    assert response.token_int == spec["text_part_ids"][:-1]
    speech = list(spec["speech_part_ids"])
    if speech and speech[0] == marker:
        speech = speech[1:]
    if marker in speech:
        speech = speech[: speech.index(marker)]
    assert response.speech_token == speech
    text = fixed_s2r.tokenizer.decode(spec["text_part_ids"][:-1], skip_special_tokens=True)
    assert response.text == text.strip()


def test_t2t_after_s2s_on_the_same_object(compat_s2r, expected, wavs):
    """The reference's generate_text2text keeps the speech phase of an earlier S2S call
    (docs/differences.md); here every call starts from its task's phase."""
    first = next(i for i in UTTS if {"s2s", "tts"} <= set(UTT_TASKS[i]))
    later = next(i for i in reversed(UTTS) if "t2t" in UTT_TASKS[i])  # another one if any
    decode_fixture(compat_s2r, expected, wavs, first, "s2s")
    decode_fixture(compat_s2r, expected, wavs, first, "tts")
    t2t, spec = decode_fixture(compat_s2r, expected, wavs, later, "t2t")
    assert t2t.ids == spec["output_token_ids"]
    assert set(t2t.heads) == {"text"}


@pytest.mark.parametrize("key", ["s2s", "asr"])
def test_cached_equals_uncached(compat_s2r, expected, wavs, decodes, key):
    last = next(i for i in reversed(UTTS) if key in UTT_TASKS[i])
    response, spec = decode_fixture(
        compat_s2r, expected, wavs, last, key, use_cache=False, output_scores=True
    )
    cached, _ = decodes[(last, key)]
    assert response.ids == cached.ids == spec["output_token_ids"]
    for a, b in zip(response.scores, cached.scores):
        finite = torch.isfinite(b)
        assert torch.equal(torch.isfinite(a), finite)
        assert (a[finite] - b[finite]).abs().max() <= 1e-4
