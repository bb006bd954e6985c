"""Matrix products of decode steps on CPU, split into column blocks that run in parallel.

A decode step multiplies a few hidden vectors by every weight of the model. On CPU, BLAS
runs such a product with few rows on a single thread (see ``benchmarks/README.md``: the
151936 x 512 text head takes the same time with one thread as with two), so each weight is read
at one core's bandwidth. Viewing the weight's columns as ``parts`` blocks and multiplying them
with one batched product (``bmm``, which torch parallelises over the batch) reads it with every
core, through torch's own thread pool. Neither torch nor transformers does this for
matrix-vector products, hence this module.

Small weights are not split: below ~1 MB the batched product's overhead outweighs the gain.
"""

from typing import Optional

import torch

SPLIT_MIN_ELEMENTS = 1 << 18


def split_addmm(
    add: Optional[torch.Tensor], x: torch.Tensor, weight_t: torch.Tensor, parts: int
) -> torch.Tensor:
    """``add + x @ weight_t`` (``add``: None, a bias (out,) or a residual (M, out)).

    Args:
        x: (M, in) the step's rows.
        weight_t: (in, out) a contiguous transposed weight (the decode layout).
        parts: column blocks computed in parallel; 1, a weight under ``SPLIT_MIN_ELEMENTS``
            or ``out`` not divisible by ``parts`` give the plain product.
    """
    rows, inner = x.shape
    out = weight_t.shape[1]
    if parts <= 1 or out % parts or weight_t.numel() < SPLIT_MIN_ELEMENTS:
        return x @ weight_t if add is None else torch.addmm(add, x, weight_t)
    blocks = weight_t.view(inner, parts, out // parts).transpose(0, 1)
    xs = x.expand(parts, rows, inner)
    if add is None:
        y = torch.bmm(xs, blocks)
    else:
        y = torch.baddbmm(add.reshape(-1, parts, out // parts).transpose(0, 1), xs, blocks)
    return y.transpose(0, 1).reshape(rows, out)


def split_linear(x: torch.Tensor, weight: torch.Tensor, parts: int) -> torch.Tensor:
    """``F.linear(x, weight)`` (no bias) for a column-major (out, in) ``weight``."""
    if not weight.t().is_contiguous():
        return torch.nn.functional.linear(x, weight)
    return split_addmm(None, x, weight.t(), parts)
