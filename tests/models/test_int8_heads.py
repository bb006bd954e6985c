"""int8 text and speech heads (fbgemm dynamic int8 Linear) give fp32's logits within the
quantisation error (#17); the option's plumbing: tests/models/test_step_capture.py."""

import torch
from torch import nn

from espnet2_echat.inference.decoder import build_plan, generate
from espnet2_echat.inference.settings import DecodingOptions
from espnet2_echat.models.int8_heads import use_int8_heads
from espnet2_echat.models.speech_llm import SpeechLLM
from tests.models.test_lean_decoder import _model


def test_int8_heads_are_close_to_fp32_and_decode():
    llm = SpeechLLM(_model("qwen2", seed=21), speech_token_num=9).eval()
    hidden = torch.randn(3, 64)
    with torch.no_grad():
        text, speech = llm.text_logits(hidden), llm.speech_logits(hidden)
        use_int8_heads(llm)
        text8, speech8 = llm.text_logits(hidden), llm.speech_logits(hidden)
    assert type(llm.causal_lm.lm_head) is not nn.Linear
    for fp32, int8 in ((text, text8), (speech, speech8)):
        err = (int8 - fp32).abs().max() / fp32.abs().max()
        assert 0 < err < 0.03  # quantised (not exact), within a few % of the largest logit
    # the float input table is kept for embedding (the tied head was copied, not shared)
    assert type(llm.causal_lm.get_input_embeddings()) is nn.Embedding
    options = DecodingOptions(do_sample=False, max_new_tokens=4, max_new_speech_tokens=4)
    plan = build_plan("s2s", options, llm.ids, im_end_id=90)
    with torch.no_grad():
        out = generate(llm, torch.randn(2, 5, 64), torch.ones(2, 5, dtype=torch.long),
                       torch.arange(5)[None].expand(2, -1), plan)
    assert all(len(row) > 0 for row in out.ids)

