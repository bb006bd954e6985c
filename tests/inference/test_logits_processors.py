"""Logits processors, stopping criteria and output parsing on hand-made ids (docs/decoding.md#parsing, docs/decoding.md#logits-processors)."""

import pytest
import torch
from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

from espnet2_echat.data.speech_ids import SpeechIds
from espnet2_echat.data.templates import IM_END_ID
from espnet2_echat.inference.logits_processors import (
    AGE_ALLOWED_IDS,
    AGE_TRIGGER_IDS,
    AgeForcingLogitsProcessor,
    FiniteTopPLogitsWarper,
    ForceTextEndLogitsProcessor,
    SpeechBudgetCriteria,
    SpeechEndCriteria,
    SpeechNGramBlockingLogitsProcessor,
    TextBudgetCriteria,
    sample,
)
from espnet2_echat.inference.decoder import build_plan
from espnet2_echat.inference.decoding_quirks import ReferenceSpeechEndCriteria
from espnet2_echat.inference.parsing import parse_generation
from espnet2_echat.inference.settings import DecodingOptions

V, S = 151936, 4097  # text vocabulary, speech head size (marker 4096)
IDS = SpeechIds.from_config(S, V)
M = V + 4096  # the speech marker as a unified id
INF = float("-inf")


def banned(scores):
    return (scores[0] == INF).nonzero().flatten().tolist()


def test_age_forcing_fires_once_after_the_trigger():
    proc = AgeForcingLogitsProcessor()
    ids = torch.tensor([[5, *AGE_TRIGGER_IDS]])
    scores = proc(ids, torch.zeros(1, V + S))
    assert sorted(set(range(V + S)) - set(banned(scores))) == sorted(AGE_ALLOWED_IDS)
    assert banned(proc(ids, torch.zeros(1, V + S))) == []  # at most once per call
    assert banned(AgeForcingLogitsProcessor()(torch.tensor([[1, 2, 3]]), torch.zeros(1, 10))) == []


def test_speech_ngram_blocking():
    proc = SpeechNGramBlockingLogitsProcessor(V)
    # five consecutive repeats of speech id 3
    assert banned(proc(torch.tensor([[7, *[V + 3] * 5]]), torch.zeros(1, V + S))) == [V + 3]
    assert banned(proc(torch.tensor([[7, *[V + 3] * 4]]), torch.zeros(1, V + S))) == []
    # five of the last eight
    ids = [V + 3, V + 1, V + 3, V + 2, V + 3, V + 4, V + 3, V + 3]
    assert banned(proc(torch.tensor([ids]), torch.zeros(1, V + S))) == [V + 3]
    # 1446 (silence-like) needs ten
    assert banned(proc(torch.tensor([[V + 1446] * 9]), torch.zeros(1, V + S))) == []
    assert banned(proc(torch.tensor([[V + 1446] * 10]), torch.zeros(1, V + S))) == [V + 1446]
    # text ids are never touched
    assert banned(proc(torch.tensor([[3] * 8]), torch.zeros(1, V + S))) == []


def test_force_text_end_only_while_in_text_phase():
    proc = ForceTextEndLogitsProcessor(3, V)
    ids = torch.tensor([[1, 2, 3], [1, IM_END_ID, V + 5], [1, 2, 9]])
    scores = proc(ids, torch.zeros(3, V + S))
    assert (scores[0] == 0).nonzero().flatten().tolist() == [IM_END_ID]
    assert (scores[1] == INF).sum() == 0
    assert (scores[2] == 0).nonzero().flatten().tolist() == [IM_END_ID]
    assert (proc(ids[:, :2], torch.zeros(3, V + S)) == INF).sum() == 0


def test_stopping_criteria():
    ids = torch.tensor(
        [[1, IM_END_ID, M, V + 5, M], [1, IM_END_ID, V + 5, V + 6, M], [1, 2, 3, 4, 5]]
    )
    compat = ReferenceSpeechEndCriteria(M)
    fixed = SpeechEndCriteria(M, V)
    assert compat(ids, None).tolist() == [True, False, False]
    assert fixed(ids, None).tolist() == [True, True, False]
    assert fixed(torch.tensor([[IM_END_ID, M]]), None).tolist() == [False]  # begin marker
    assert SpeechBudgetCriteria(3, V)(ids, None).tolist() == [True, True, False]
    assert TextBudgetCriteria(5, V)(ids, None).tolist() == [False, False, True]


def test_stop_rule_switch_swaps_only_the_stop_rules():
    """``s2s_stop_at_text_budget`` (build_plan's ``reference_compat``): S2S stops at the
    text budget instead of forcing <|im_end|>, speech ends at the reference's marker count;
    a caller's own processors and the other tasks' rules stay."""
    options = DecodingOptions(max_new_tokens=7, max_new_speech_tokens=9)
    kinds = lambda items: [type(i).__name__ for i in items]  # noqa: E731
    fixed = build_plan("s2s", options, IDS)
    own = ForceTextEndLogitsProcessor(3, V)
    compat = build_plan("s2s", options, IDS, True, logits_processor=[own])
    assert "ForceTextEndLogitsProcessor" in kinds(fixed.logits_processor)
    assert kinds(fixed.stopping_criteria) == ["SpeechEndCriteria", "SpeechBudgetCriteria"]
    assert list(compat.logits_processor) == [own]
    assert sorted(kinds(compat.stopping_criteria)) == [
        "ReferenceSpeechEndCriteria",
        "SpeechBudgetCriteria",
        "TextBudgetCriteria",
    ]
    budget = next(c for c in compat.stopping_criteria if isinstance(c, TextBudgetCriteria))
    assert budget.max_text_tokens == 7
    assert kinds(build_plan("joint", options, IDS, True).stopping_criteria) == [
        "TextBudgetCriteria",
        "ReferenceSpeechEndCriteria",
        "SpeechBudgetCriteria",
    ]
    for kind in ("text", "tts"):
        assert kinds(build_plan(kind, options, IDS, True).stopping_criteria) == kinds(
            build_plan(kind, options, IDS).stopping_criteria
        )


def test_parse_s2s_fixed_and_compat():
    ids = [10, 11, 12, IM_END_ID, M, V + 1, V + 2, V + 3, M]
    fixed = parse_generation(ids, "s2s", IDS)
    assert fixed.token_int == fixed.text_ids == [10, 11, 12]
    assert fixed.speech_tokens == [1, 2, 3]
    compat = parse_generation(ids, "s2s", IDS, reference_compat=True)
    assert compat.token_int == [10, 11, 12]
    assert compat.text_ids == [10, 11]  # the reference drops the last text id
    assert compat.speech_tokens == [1, 2, 3]  # ids[eos+1:-1] without its first element
    # no begin marker: fixed keeps every token, compat drops the first one anyway
    ids = [10, IM_END_ID, V + 1, V + 2, V + 3, M]
    assert parse_generation(ids, "s2s", IDS).speech_tokens == [1, 2, 3]
    assert parse_generation(ids, "s2s", IDS, reference_compat=True).speech_tokens == [2, 3]


def test_parse_tts_and_text():
    assert parse_generation([V + 1, V + 2, M], "tts", IDS).speech_tokens == [1, 2]
    assert parse_generation([V + 1, V + 2, V + 3], "tts", IDS).speech_tokens == [1, 2, 3]
    compat = parse_generation([V + 1, V + 2, V + 3], "tts", IDS, reference_compat=True)
    assert compat.speech_tokens == [1, 2]  # the reference's caller drops the last id
    text = parse_generation([5, 6, IM_END_ID], "text", IDS)
    assert text.token_int == text.text_ids == [5, 6] and text.speech_tokens == []


@pytest.mark.parametrize("top_k, top_p", [(5, 0.9), (50, 0.5), (3, 0.999), (0, 0.8)])
def test_finite_top_p_keeps_what_transformers_keeps(top_k, top_p):
    gen = torch.Generator().manual_seed(top_k)
    scores = torch.randn(3, V + S, generator=gen) * 3
    scores[1, V:] = INF  # a text row and a speech row, as the decoder makes them
    scores[2, :V] = INF
    if top_k:
        scores = TopKLogitsWarper(top_k)(None, scores)
    ours = FiniteTopPLogitsWarper(top_p)(None, scores.clone())
    theirs = TopPLogitsWarper(top_p)(None, scores.clone())
    assert torch.equal(torch.isfinite(ours), torch.isfinite(theirs))
    assert torch.equal(ours[torch.isfinite(ours)], theirs[torch.isfinite(theirs)])


def test_sampling_over_few_finite_entries_follows_the_softmax():
    scores = torch.full((1, 1000), INF)
    kept = torch.tensor([7, 940, 500])
    scores[0, kept] = torch.tensor([1.0, 0.0, -1.0])
    gen = torch.Generator().manual_seed(0)
    draws = torch.cat([sample(scores.expand(200, -1), gen) for _ in range(50)])
    assert set(draws.tolist()) <= set(kept.tolist())
    freq = torch.stack([(draws == k).float().mean() for k in kept])
    expected = torch.softmax(torch.tensor([1.0, 0.0, -1.0]), dim=0)
    assert (freq - expected).abs().max() < 0.02  # 10000 draws: ~5 standard errors


def test_sampling_a_full_row_follows_the_softmax():
    scores = torch.full((1, 10), -2.0)
    scores[0, 3] = 2.0
    gen = torch.Generator().manual_seed(1)
    draws = sample(scores.expand(20000, -1), gen)
    expected = torch.softmax(scores[0], dim=0)[3]
    assert abs((draws == 3).float().mean() - expected) < 0.015
