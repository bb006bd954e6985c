"""The layout's special text ids come from the tokenizer: Qwen2.5's are the reference's
constants; a tokenizer without a single <|im_end|> token is refused by name."""

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from espnet2_echat.data.layout import LayoutBuilder
from espnet2_echat.data.speech_ids import SpeechIds
from espnet2_echat.data.templates import IM_END_ID, UNKNOWN_ID

REPO = Path(__file__).resolve().parents[2]


def test_qwen_tokenizer_gives_the_reference_ids():
    builder = LayoutBuilder(str(REPO / "conf/tokenizer/qwen2.5"), SpeechIds(256))
    assert builder.im_end_id == IM_END_ID == 151645
    assert builder.unknown_ids == {UNKNOWN_ID}
    _, target = builder.training_example("text", label_text="hi <&&>", instruction="x")
    assert UNKNOWN_ID not in target and target[-1] != IM_END_ID  # "<&&>": no <|im_end|>


def test_tokenizer_without_im_end_is_refused():
    # special tokens split like text: <|im_end|> becomes several BPE pieces
    plain = AutoTokenizer.from_pretrained(str(REPO / "conf/tokenizer/qwen2.5"),
                                          split_special_tokens=True)
    with pytest.raises(ValueError, match=r"no single <\|im_end\|> token"):
        LayoutBuilder(plain, SpeechIds(256))
