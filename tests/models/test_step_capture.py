"""The captured (compiled) decode step gives the eager lean decoder's greedy ids and logits,
for text, speech and text-then-speech decodes, one row and a left-padded batch, and compiles
once per shape, not once per step (#17).

One small Qwen2 LLM is shared by the module: compiling on CPU takes seconds per shape.
"""

import pytest
import torch
from torch._dynamo.utils import counters
from transformers import Qwen2Config, Qwen2ForCausalLM

from espnet2_echat.inference.decoder import build_plan, generate
from espnet2_echat.inference.settings import DecodingOptions
from espnet2_echat.models.speech_llm import SpeechLLM
from espnet2_echat.models.step_capture import CACHE_BUCKET, captured_length

HIDDEN = 64


def _llm(seed: int) -> SpeechLLM:
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=97, hidden_size=HIDDEN, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        tie_word_embeddings=True,
    )
    causal_lm = Qwen2ForCausalLM(config).eval()
    model = SpeechLLM(causal_lm, speech_token_num=9).eval()
    for p in model.parameters():  # away from the init, so that ids vary from step to step
        p.data.normal_(0, 0.3)
    model.use_column_major_weights()
    return model


@pytest.fixture(scope="module")
def llm():
    return _llm(0)


def _inputs(batch: int, prompt: int, seed: int):
    torch.manual_seed(seed)
    embeds = torch.randn(batch, prompt, HIDDEN)
    mask = torch.ones(batch, prompt, dtype=torch.long)
    for row in range(1, batch):
        mask[row, : 2 * row] = 0  # left padding, longer further down
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    return embeds, mask, positions


def _plan(llm, task_kind: str, text: int, speech: int):
    options = DecodingOptions(
        do_sample=False, max_new_tokens=text, max_new_speech_tokens=speech, min_new_tokens=0
    )
    return build_plan(task_kind, options, llm.ids, im_end_id=90)


def _decode(llm, capture: bool, inputs, plan):
    llm.enable_step_capture(capture)
    try:
        with torch.no_grad():
            return generate(llm, *inputs, plan, output_scores=True)
    finally:
        llm.enable_step_capture(False)


def _graphs() -> int:
    return counters["stats"]["unique_graphs"]


@pytest.mark.slow  # compiles (tens of seconds on 2 busy cores); runs in CI
@pytest.mark.parametrize("batch", [1, 3])
def test_captured_decodes_equal_eager(llm, batch):
    inputs = _inputs(batch, prompt=7, seed=batch)
    before = _graphs()
    for task_kind, text, speech in (("text", 12, 0), ("tts", 0, 12), ("s2s", 6, 10)):
        plan = _plan(llm, task_kind, text, speech)
        eager = _decode(llm, False, inputs, plan)
        captured = _decode(llm, True, inputs, plan)
        assert captured.ids == eager.ids, task_kind
        assert captured.phases == eager.phases, task_kind
        assert sum(len(r) for r in eager.ids) >= batch * 6  # decodes of several steps
        for ours, theirs in zip(captured.scores, eager.scores):
            ours, theirs = torch.stack(ours), torch.stack(theirs)
            finite = theirs.isfinite()
            assert torch.equal(ours.isfinite(), finite)  # the same head each step
            assert (ours[finite] - theirs[finite]).abs().max() < 1e-4, task_kind
    # the captured step really ran: one program for this batch size, whatever the task
    assert _graphs() - before == 1


def test_compiles_once_per_shape_not_per_step(llm):
    before = _graphs()
    first = _decode(llm, True, _inputs(2, prompt=5, seed=7), _plan(llm, "text", 20, 0))
    assert len(first.ids[0]) >= 10  # many steps, one compile
    assert _graphs() - before == 1
    # another prompt length and step budget within the same cache bucket: no new program
    assert captured_length(9 + 30 + 2) == captured_length(5 + 20 + 2) == CACHE_BUCKET
    _decode(llm, True, _inputs(2, prompt=9, seed=8), _plan(llm, "text", 30, 0))
    assert _graphs() - before == 1


@pytest.mark.slow  # compiles a second program
def test_steps_after_the_first_skip_guards_but_not_the_model(llm):
    """Steps after a cache's first run without dynamo's guard evaluation: two LLMs of one
    shape (one compiled function) decoded in turn still each give their own eager ids."""
    other = _llm(1)
    inputs = _inputs(1, prompt=5, seed=3)
    plan = _plan(llm, "text", 16, 0)
    eager = [_decode(model, False, inputs, plan).ids for model in (llm, other)]
    assert eager[0] != eager[1]
    for model, expected in ((llm, eager[0]), (other, eager[1]), (llm, eager[0])):
        assert _decode(model, True, inputs, plan).ids == expected


def test_captured_cache_is_zeroed_and_bucketed(llm):
    llm.enable_step_capture(True)
    try:
        with torch.no_grad():
            cache = llm.new_cache(1, 300, torch.float32, "cpu")
    finally:
        llm.enable_step_capture(False)
    assert cache.max_len == 2 * CACHE_BUCKET and cache.step is not None
    assert all(not k.any() for k in cache.keys + cache.values)
    with torch.no_grad():
        assert llm.new_cache(1, 300, torch.float32, "cpu").step is None  # capture off


@pytest.mark.reference
@pytest.mark.parametrize("flag", ["compile_step", "int8_heads"])
def test_the_speed_flags_reach_the_llm(converted_dir, flag):
    """``--compile_step`` / ``--int8_heads`` of echat_inference reach ``Speech2Response`` and
    the LLM, which then decodes."""
    from torch import nn

    from espnet2_echat.bin.echat_inference import get_parser
    from espnet2_echat.inference import Speech2Response

    args = get_parser().parse_args(
        ["--data_path_and_name_and_type", "x,speech,sound", "--output_dir", "o", "--task",
         "asr", f"--{flag}", "true"]
    )
    assert getattr(args, flag) is True
    s2r = Speech2Response(
        converted_dir / "config.yaml", converted_dir / "model.pth", **{flag: True}
    )
    llm = s2r.model.llm
    assert llm.capture_step if flag == "compile_step" else type(llm.speech_head) is not nn.Linear
    if flag == "int8_heads":  # (a compiled decode is tested above, on a smaller model)
        assert len(s2r(task="t2t", text="hello", do_sample=False, max_new_tokens=3).token_int)
