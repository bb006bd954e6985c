"""``add_tag_tokens``: OSUM-EChat's tags become single ids of the LLM's tokenizer, the LLM's
embeddings grow to them (rows = mean of the tag's old pieces), and the layout, the speech ids
and decoding follow the grown vocabulary. Tiny size, vendored Qwen2.5 tokenizer; the grown case
shrinks the tiny LLM's vocabulary below the tokenizer so that rows must be added."""

from pathlib import Path

import pytest
import torch

from espnet2_echat.data.labels import EMOTION_LABELS, GENDER_LABELS, REPLY_EMOTION_LABELS
from espnet2_echat.data.layout import load_tokenizer
from espnet2_echat.data.tag_tokens import tag_tokens
from espnet2_echat.tasks.echat import EChatTask

REPO = Path(__file__).resolve().parents[2]
QWEN = str(REPO / "conf/tokenizer/qwen2.5")
QWEN_LEN = 151665  # len() of the vendored Qwen2.5 tokenizer


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def build(*extra: str):
    args = EChatTask.get_parser().parse_args(
        ["--config", str(REPO / "conf/train_stage1_understanding.yaml"), *extra]
    )
    torch.manual_seed(0)
    return EChatTask.build_model(args), args


def test_tags_are_single_ids_and_decode_back():
    plain, tagged = load_tokenizer(QWEN), load_tokenizer(QWEN, True)
    assert len(plain) == QWEN_LEN
    assert len(tagged) > len(plain)
    for tag in tag_tokens():
        ids = tagged.encode(tag, add_special_tokens=False)
        assert len(ids) == 1, (tag, ids)
    # every label kind and the CoT markers are among them
    assert set(GENDER_LABELS + EMOTION_LABELS + REPLY_EMOTION_LABELS) <= set(tag_tokens())
    assert {"<think>", "<think end>", "<&&>", "<TRANSCRIBE>"} <= set(tag_tokens())
    # text around the tags is tokenised as before, and decoding (as inference does) keeps tags
    text = "年龄为:<ADULT>,性别为:<FEMALE><think end><开心>Glad to hear it"
    ids = tagged.encode(text, add_special_tokens=False)
    assert tagged.decode(ids, skip_special_tokens=True) == text
    assert tagged.encode("Glad to hear it", add_special_tokens=False) == plain.encode(
        "Glad to hear it", add_special_tokens=False
    )
    assert len(ids) < len(plain.encode(text, add_special_tokens=False))


def test_grown_llm_layout_and_loss():
    """The tokenizer with tags is longer than the LLM: the LLM grows to it, each new row is
    the mean of the tag's old piece rows in the same model without tags, and the speech ids,
    the preprocessor's layout and the loss all use the grown vocabulary."""
    shrink = ["--llm_conf", "config_overrides={vocab_size: %d}" % QWEN_LEN]
    base, _ = build(*shrink)
    model, args = build(*shrink, "--add_tag_tokens", "true")
    plain, tagged = load_tokenizer(QWEN), load_tokenizer(QWEN, True)
    assert base.llm.text_vocab_size == QWEN_LEN
    assert model.llm.text_vocab_size == len(tagged) > QWEN_LEN
    assert model.llm.ids.joint(0) == len(tagged)  # speech ids start after the grown text ids
    old = base.llm.causal_lm.get_input_embeddings().weight
    new = model.llm.causal_lm.get_input_embeddings().weight
    assert torch.equal(new[:QWEN_LEN], old)
    for tag in ("<MALE>", "<FEMALE>", "<安慰鼓励>"):
        pieces = plain.encode(tag, add_special_tokens=False)
        row = new[tagged.convert_tokens_to_ids(tag)]
        torch.testing.assert_close(row, old[pieces].mean(0))
    assert not torch.allclose(new[tagged.convert_tokens_to_ids("<MALE>")],
                              new[tagged.convert_tokens_to_ids("<FEMALE>")])

    pre = EChatTask.build_preprocess_fn(args, train=False)
    wav = torch.randn(8000).numpy()
    sample = pre("u1", {"task": "<GENDER>", "speech": wav, "utt2gender": "<FEMALE>"})
    target = [int(i) for i in sample["target"] if i != -100]
    assert target == [tagged.convert_tokens_to_ids("<FEMALE>"), tagged.convert_tokens_to_ids("<|im_end|>")]
    # the audio markers are speech-table ids after the grown vocabulary
    ids = [int(i) for i in sample["input_ids"]]
    assert model.llm.ids.joint(model.llm.ids.audio_bos) in ids
    collate = EChatTask.build_collate_fn(args, train=False)
    batch = collate([("u1", sample)])[1]
    loss, stats, _ = model(**batch)
    assert torch.isfinite(loss)


def test_qwen_spare_rows_hold_tags_without_growing():
    """Qwen2.5's embedding has rows past its tokenizer: the tags fit there, nothing grows."""
    model, _ = build("--add_tag_tokens", "true")
    tagged = load_tokenizer(QWEN, True)
    assert len(tagged) < 151936 == model.llm.text_vocab_size
