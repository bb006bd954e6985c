"""Batch decode steps through the oneDNN-packed text head give transformers' greedy ids and
logits (#17)."""

import pytest
import torch

from espnet2_echat.inference.decoder import build_plan, generate
from espnet2_echat.inference.settings import DecodingOptions
from espnet2_echat.models.packed_linear import PackedWeight, packing_available
from espnet2_echat.models.speech_llm import SpeechLLM
from tests.models.test_lean_decoder import _model


@pytest.mark.skipif(not packing_available(), reason="torch built without oneDNN")
@pytest.mark.parametrize("family", ["qwen2", "llama_biased"])
def test_packed_batch_steps_equal_transformers(family):
    causal_lm = _model(family, seed=11)
    llm = SpeechLLM(causal_lm, speech_token_num=9).eval()
    batch, prompt, n = 3, 6, 10
    torch.manual_seed(12)
    embeds = torch.randn(batch, prompt, 64)
    mask = torch.ones(batch, prompt, dtype=torch.long)
    mask[1, :2] = 0  # left padding
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        expected = causal_lm.generate(
            inputs_embeds=embeds, attention_mask=mask, max_new_tokens=n, do_sample=False,
            pad_token_id=0, eos_token_id=None, output_scores=True, return_dict_in_generate=True,
        )
    llm.use_column_major_weights()
    assert isinstance(llm.packed_head, PackedWeight)
    options = DecodingOptions(do_sample=False, max_new_tokens=n, max_new_speech_tokens=0)
    plan = build_plan("text", options, llm.ids, im_end_id=90)
    with torch.no_grad():
        ours = generate(llm, embeds, mask, positions, plan, output_scores=True)
    assert [row[:n] for row in ours.ids] == expected.sequences.tolist()
    for step, theirs in enumerate(expected.scores):
        mine = torch.stack([row[step][: theirs.shape[1]] for row in ours.scores])
        assert (mine - theirs).abs().max() < 1e-4
    assert llm.packed_head._packed is not None  # the steps went through the packed copy
