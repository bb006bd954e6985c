"""Decode-step products split into column blocks equal the plain ones (computed by torch)."""

import pytest
import torch
from torch.nn.functional import linear

from espnet2_echat.models.split_linear import split_addmm, split_linear


@pytest.mark.parametrize("parts", [1, 2, 4])
@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize("add", [None, "bias", "residual"])
def test_split_addmm_equals_addmm(parts, rows, add):
    gen = torch.Generator().manual_seed(parts * 10 + rows)
    weight_t = torch.randn(600, 1024, generator=gen)  # 614400 elements: split
    x = torch.randn(rows, 600, generator=gen)
    extra = {None: None, "bias": torch.randn(1024), "residual": torch.randn(rows, 1024)}[add]
    ours = split_addmm(extra, x, weight_t, parts)
    expected = x @ weight_t if extra is None else extra + x @ weight_t
    assert ours.shape == (rows, 1024)
    assert torch.allclose(ours, expected, rtol=0, atol=1e-4)


def test_uneven_or_small_weights_are_not_split(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "bmm", lambda *a: calls.append(a) or None)
    x = torch.randn(1, 600)
    split_addmm(None, x, torch.randn(600, 1023), 2)  # 1023 columns: not divisible
    split_addmm(None, torch.randn(1, 8), torch.randn(8, 64), 2)  # small
    assert calls == []


@pytest.mark.parametrize("column_major", [False, True])
def test_split_linear_equals_f_linear(column_major):
    weight = torch.randn(151936 // 8, 32)
    if column_major:
        weight = weight.t().contiguous().t()
    x = torch.randn(2, 32)
    assert torch.allclose(split_linear(x, weight, 2), linear(x, weight), rtol=0, atol=1e-5)


def test_speech_llm_splits_the_head_for_decode_steps_only(monkeypatch):
    """One row: column blocks (split_linear); 2..16 rows: the packed copy; else the module."""
    from benchmarks.sizes import build
    from espnet2_echat.models import speech_llm

    llm = build("tiny").llm
    calls = []
    real = speech_llm.split_linear
    monkeypatch.setattr(speech_llm, "split_linear", lambda *a: calls.append(a[0].shape) or real(*a))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    one, rows = torch.randn(1, 32), torch.randn(3, 32)
    with torch.no_grad():
        before = llm.text_logits(one), llm.text_logits(rows)
        llm.use_column_major_weights()
        after = llm.text_logits(one), llm.text_logits(rows)
        llm.text_logits(torch.randn(2, 5, 32))  # many positions: BLAS threads them itself
    with torch.enable_grad():
        llm.text_logits(one)  # training: the module
    if llm.packed_head is None:  # no oneDNN in this torch build: rows split as one row does
        assert calls == [(1, 32), (3, 32)]
    else:
        assert calls == [(1, 32)] and llm.packed_head._packed is not None
    for b, a in zip(before, after):
        assert torch.allclose(b, a, rtol=0, atol=1e-5)
