"""Trainable rows of added tags beside a frozen LLM (``models/text_row_deltas.py``).

Every check compares with the same LLM whose weight rows were edited by hand
(``weight[id] += delta``), the computation the deltas stand for: embeddings, text logits on
the training path and on the decoding paths, the gradient a trainable row would get, and
frozen-prefix reuse when a prompt holds such an id.
"""

import copy

import pytest
import torch

from espnet2_echat.inference.decoder import Phase, embed_step
from espnet2_echat.models.frozen_prefix import frozen_prefix_blocker
from espnet2_echat.models.trainable import set_trainable_parts
from tests.models.test_frozen_prefix import (
    FAMILIES,
    V,
    _assert_same,
    _batch,
    _model,
    _run,
)

TAGS = [3, 17, 40, V - 1]  # ids whose rows train


def _randomised(family):
    model = _model(family, trainable_text_ids=TAGS)
    deltas = model.llm.text_row_deltas
    with torch.no_grad():
        for p in deltas.parameters():
            p.normal_(0, 0.5)
    return model


def _edited(model):
    """A copy without deltas whose LLM rows hold ``weight[id] + delta``."""
    plain = copy.deepcopy(model)
    deltas = plain.llm.text_row_deltas
    lm = plain.llm.causal_lm
    with torch.no_grad():
        lm.get_input_embeddings().weight[deltas.ids] += deltas.input_delta
        if deltas.output_delta is not None:
            lm.get_output_embeddings().weight[deltas.ids] += deltas.output_delta
    plain.llm.text_row_deltas = None
    return plain


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_embeddings_and_logits_equal_edited_rows(family):
    model = _randomised(family)
    assert (model.llm.text_row_deltas.output_delta is None) == (family == "llama_tied")
    plain = _edited(model)
    ids = torch.tensor([[3, 4, 17, V + 2, 40], [V - 1, 0, 3, 3, 5]])
    torch.testing.assert_close(model.llm.embed(ids), plain.llm.embed(ids))
    hidden = torch.randn(2, 5, model.llm.speech_head.in_features)
    torch.testing.assert_close(model.llm.joint_logits(hidden), plain.llm.joint_logits(hidden))
    step_ids = torch.tensor([3, 4, V - 1])  # a decode step's text ids
    torch.testing.assert_close(embed_step(model.llm, step_ids, {Phase.TEXT}),
                               embed_step(plain.llm, step_ids, {Phase.TEXT}))
    # the decoding paths: one row and a few rows, column-major weights, no gradient
    for m in (model, plain):
        m.eval().llm.use_column_major_weights()
    with torch.no_grad():
        for rows in (1, 3):
            h = hidden[0, :rows]
            torch.testing.assert_close(model.llm.text_logits(h), plain.llm.text_logits(h))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_only_the_rows_train_and_their_gradient_is_the_rows_gradient(family):
    model = _randomised(family)
    assert frozen_prefix_blocker(model.llm) is None  # the LLM itself stays frozen
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {n for n in trained if "text_row_deltas" in n} == (
        {"llm.text_row_deltas.input_delta"} | (
            set() if family == "llama_tied" else {"llm.text_row_deltas.output_delta"})
    )
    batch = _batch()
    batch["input_ids"][0, 2] = 17  # a tag in a prompt and one as a target
    batch["target"][2, batch["target_lengths"][2] - 1] = 40
    batch["input_ids"][2, batch["target_lengths"][2] - 1] = 40
    plain = _edited(model)
    ours = _run(model, batch)
    plain.reuse_frozen_prefix = False
    set_trainable_parts(plain, "all")
    expected = _run(plain, batch)
    torch.testing.assert_close(ours[0], expected[0], rtol=1e-5, atol=1e-6)
    grads, rows = ours[3], model.llm.text_row_deltas.ids
    lm = "llm.causal_lm."
    in_name = lm + "model.embed_tokens.weight"
    out_name = lm + "lm_head.weight"
    # tied: the one weight's gradient sums the embedding's and the head's shares
    torch.testing.assert_close(grads["llm.text_row_deltas.input_delta"],
                               expected[3][in_name][rows], rtol=1e-4, atol=1e-6)
    if family != "llama_tied":
        torch.testing.assert_close(grads["llm.text_row_deltas.output_delta"],
                                   expected[3][out_name][rows], rtol=1e-4, atol=1e-6)
    assert grads["llm.text_row_deltas.input_delta"].abs().sum() > 0


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_prefix_reuse_with_a_tag_in_the_prompt_equals_full_forward(family):
    model = _randomised(family)
    batch = _batch()
    batch["input_ids"][0, 4] = 17  # inside the shared system prompt of samples 0, 1, 4
    full = copy.deepcopy(model)
    full.reuse_frozen_prefix = False
    expected = _run(full, batch)
    _assert_same(_run(model, batch), expected)
    assert model.prefix_cache.misses > 0  # reuse did run, on the prefix before the tag
