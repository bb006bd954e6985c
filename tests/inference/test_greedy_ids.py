"""The block-parallel greedy choice equals torch's argmax, ties included."""

import pytest
import torch

from espnet2_echat.inference.decoder import greedy_ids

WIDTH = 151936 + 4097


@pytest.mark.parametrize("threads", [2, 3])
def test_equals_argmax_on_random_and_tied_rows(threads, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    gen = torch.Generator().manual_seed(threads)
    scores = torch.randn(6, WIDTH, generator=gen)
    scores[1, 151936:] = float("-inf")  # a text row
    scores[2, :151936] = float("-inf")  # a speech row: the maximum in the tail
    scores[3, [10, 90000, 150000]] = 50.0  # ties across blocks: the first one wins
    scores[4, [WIDTH - 1, 7]] = 50.0  # a tie between the tail and the first block
    scores[5, WIDTH - 1] = 50.0  # the maximum alone in the tail (2 threads: 1 left over)
    ours = greedy_ids(scores)
    assert torch.equal(ours, scores.argmax(dim=-1))
    assert ours[3] == 10 and ours[4] == 7 and ours[5] == WIDTH - 1


def test_one_thread_is_plain_argmax(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    scores = torch.randn(2, WIDTH)
    assert torch.equal(greedy_ids(scores), scores.argmax(dim=-1))
