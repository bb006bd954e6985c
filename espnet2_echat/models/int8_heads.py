"""The LLM's text and speech heads as int8 products for CPU decoding (#17, item 6).

The text head is most of the bytes a decode step reads at small sizes (151936 x 512 of the
small size's 387 MB). fbgemm's dynamic int8 Linear (``torch.ao.quantization.quantize_dynamic``:
int8 weights per output channel, activations quantised per call) reads a quarter of them and
ran 3.3x (1 row) to 5x (8 rows) faster than the fp32 product on the development VM
(``benchmarks/int8_products.py``); greedy ids agreed with fp32 on the golden set about as
often as bf16's did, with logit errors of ~2 % of the largest logit
(``benchmarks/bf16_agreement.py --variant int8_heads``). Inference only: the quantised heads
have no gradient and do not save as the float checkpoint does.
"""

import warnings

import torch
from torch import nn


def int8_linear(linear: nn.Linear) -> nn.Module:
    """``linear`` as fbgemm's dynamic int8 Linear (same in/out features and bias)."""
    float_copy = nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None)
    float_copy.load_state_dict({k: v.detach().float() for k, v in linear.state_dict().items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's notice that torchao is its successor
        return torch.ao.quantization.quantize_dynamic(
            nn.Sequential(float_copy), {nn.Linear}, dtype=torch.qint8
        )[0]


def use_int8_heads(llm) -> None:
    """Replace ``llm``'s (a ``SpeechLLM``) text and speech heads by int8 ones, in place.

    The input embedding keeps its float table (a tied head is copied, not shared). CPU only:
    fbgemm has no CUDA kernels.
    """
    head = llm.causal_lm.get_output_embeddings()
    if head.weight.device.type != "cpu":
        raise ValueError(f"int8 heads run on CPU only; the LLM is on {head.weight.device}")
    llm.causal_lm.lm_head = int8_linear(head)
    llm.speech_head = int8_linear(llm.speech_head)
