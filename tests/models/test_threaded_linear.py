"""The threaded decode-step linear equals ``F.linear`` (computed by torch itself)."""

import pytest
import torch
from torch.nn.functional import linear

from espnet2_echat.models.threaded_linear import threaded_linear


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize("column_major", [False, True])
def test_equals_f_linear(threads, rows, column_major):
    gen = torch.Generator().manual_seed(threads * 10 + rows)
    weight = torch.randn(1001, 48, generator=gen)  # odd row count: uneven split
    if column_major:
        weight = weight.t().contiguous().t()
    x = torch.randn(rows, 48, generator=gen)
    ours = threaded_linear(x, weight, threads)
    assert ours.shape == (rows, 1001)
    assert torch.allclose(ours, linear(x, weight), rtol=0, atol=1e-5)


def test_speech_llm_uses_it_for_decode_steps_only(monkeypatch):
    from benchmarks.sizes import build
    from espnet2_echat.models import speech_llm

    llm = build("tiny").llm
    calls = []
    real = speech_llm.threaded_linear
    monkeypatch.setattr(
        speech_llm, "threaded_linear", lambda *a: calls.append(a[0].shape) or real(*a)
    )
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    hidden = torch.randn(2, 32)
    with torch.no_grad():
        before = llm.text_logits(hidden)
        llm.use_column_major_weights()
        after = llm.text_logits(hidden)
        llm.text_logits(torch.randn(2, 5, 32))  # many positions: BLAS threads them itself
    with torch.enable_grad():
        llm.text_logits(hidden)  # training: the module
    assert calls == [(2, 32)]
    assert torch.allclose(before, after, rtol=0, atol=1e-5)
