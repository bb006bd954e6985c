"""The speech-id object against the golden set's own constants, and its users agree with it."""

import pytest

from espnet2_echat.data.speech_ids import SpeechIds

pytestmark = pytest.mark.reference


def test_numbers_are_the_reference_constants(expected):
    """``constants`` of expected.json are what the reference's code uses."""
    c = expected["constants"]
    ids = SpeechIds.from_config(c["speech_token_num"], c["text_vocab"])
    assert ids.speech_token_num == c["speech_token_num"]
    assert ids.marker == c["speech_boundary_id"]
    assert ids.audio_bos == c["audio_bos_id(speech_token_emded)"]
    assert ids.audio_eos == c["audio_eos_id(speech_token_emded)"]
    assert ids.table_size == c["speech_emb_rows"]
    assert ids.joint_marker == c["text_vocab"] + c["speech_boundary_id"]
    assert ids.speech_ids_of([5, ids.joint(7), ids.joint_marker]) == [7, ids.marker]


def test_model_layout_and_parser_use_one_scheme(tiny_model, osum_tiny_dir, expected):
    """The model's tables, the layout builder's markers and the parser read the same ids."""
    from espnet2_echat.data.layout import LayoutBuilder
    from espnet2_echat.data.templates import AUDIO_PLACEHOLDER
    from espnet2_echat.inference.parsing import parse_generation

    c = expected["constants"]
    llm = tiny_model.llm
    assert llm.speech_embedding.num_embeddings == c["speech_emb_rows"]
    assert llm.speech_head.out_features == c["speech_token_num"]
    assert (llm.speech_eos_id, llm.audio_bos_id, llm.audio_eos_id) == (4096, 4097, 4098)
    builder = LayoutBuilder(str(osum_tiny_dir / "llm"), llm.ids)
    v = c["text_vocab"]
    assert builder.audio_block() == [v + 4097, AUDIO_PLACEHOLDER, v + 4098]
    assert builder.speech_marker == v + 4096
    parsed = parse_generation([11, 151645, v + 4096, v + 3, v + 9, v + 4096], "s2s", llm.ids)
    assert parsed.speech_tokens == [3, 9] and parsed.token_int == [11]


def test_layout_builder_refuses_the_old_signature():
    with pytest.raises(TypeError, match="SpeechIds"):
        from espnet2_echat.data.layout import LayoutBuilder

        LayoutBuilder(object(), 151936, 4097)
    with pytest.raises(ValueError, match="K >= 1"):
        SpeechIds.from_config(0)
