"""``adapter_proj_init: embedding_rms`` starts audio embeddings at the text embeddings' scale."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from espnet2_echat.models.adapter import EChatAdapter
from espnet2_echat.models.adapter_init import init_adapter_projection


def _parts(embedding_std):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2)
    lm = LlamaForCausalLM(config)
    lm.get_input_embeddings().weight.data.normal_(0, embedding_std)
    adapter = EChatAdapter(32, 64, attention_heads=2, linear_units=48, num_blocks=1,
                           dropout_rate=0.0).eval()
    return adapter, lm


def _output_rms(adapter):
    with torch.no_grad():
        out, _ = adapter(torch.randn(4, 200, 32), torch.full((4,), 200))
    return float(out.pow(2).mean().sqrt())


@pytest.mark.parametrize("std", [0.02, 0.13])
def test_embedding_rms_matches_the_text_table(std):
    adapter, lm = _parts(std)
    default = _output_rms(adapter)
    init_adapter_projection(adapter, lm, "embedding_rms")
    table_rms = float(lm.get_input_embeddings().weight.pow(2).mean().sqrt())
    assert default > 3 * table_rms  # PyTorch's start is far larger than the text table
    assert _output_rms(adapter) == pytest.approx(table_rms, rel=0.1)
    assert torch.count_nonzero(adapter.proj.bias) == 0


def test_default_leaves_the_projection_and_unknown_is_refused():
    adapter, lm = _parts(0.02)
    before = adapter.proj.weight.clone()
    init_adapter_projection(adapter, lm, "default")
    assert torch.equal(adapter.proj.weight, before)
    with pytest.raises(ValueError, match="adapter_proj_init must be one of"):
        init_adapter_projection(adapter, lm, "xavier")
