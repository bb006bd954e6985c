"""The blockwise greedy choice equals torch's argmax: ties, NaN, -inf rows and every width."""

import pytest
import torch

from espnet2_echat.inference.decoder import GREEDY_BLOCK, greedy_ids

WIDTH = 151936 + 4097


def test_equals_argmax_on_random_and_tied_rows():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(9, WIDTH, generator=gen)
    scores[1, 151936:] = float("-inf")  # a text row
    scores[2, :151936] = float("-inf")  # a speech row: the maximum in the tail block
    scores[3, [10, 90000, 150000]] = 50.0  # ties across blocks: the first one wins
    scores[4, [WIDTH - 1, 7]] = 50.0  # a tie between the tail and the first block
    scores[5, WIDTH - 1] = 50.0  # the maximum alone in the last column
    scores[6] = float("-inf")  # nothing allowed: column 0, as argmax
    scores[7, [5000, 100]] = float("nan")  # NaN wins, the first one
    scores[8, [GREEDY_BLOCK - 1, GREEDY_BLOCK]] = 50.0  # a tie across a block border
    ours = greedy_ids(scores)
    assert torch.equal(ours, scores.argmax(dim=-1))
    assert ours.tolist()[3:9] == [10, 7, WIDTH - 1, 0, 100, GREEDY_BLOCK - 1]


@pytest.mark.parametrize(
    "width", [GREEDY_BLOCK - 1, 2 * GREEDY_BLOCK, 2 * GREEDY_BLOCK + 1, 3 * GREEDY_BLOCK + 77]
)
def test_equals_argmax_at_any_width(width):
    gen = torch.Generator().manual_seed(width)
    scores = torch.randint(0, 50, (16, width), generator=gen).float()  # many ties
    assert torch.equal(greedy_ids(scores), scores.argmax(dim=-1))
    sliced = torch.randn(3, width + 5, generator=gen)[:, 5:]  # a strided view
    assert torch.equal(greedy_ids(sliced), sliced.argmax(dim=-1))
