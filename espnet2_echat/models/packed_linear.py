"""Products of a few rows (a decode step of a small batch) with a weight prepacked by oneDNN.

With 2..16 rows, MKL's ``sgemm`` re-packs the whole weight into its blocked layout on every
call: for the 151936 x 512 text head that is a second pass over 311 MB, and the batch-8 head
took 2.4-2.6x the time to read the weight once (``benchmarks/README.md``, #17). oneDNN can
pack a weight once for a given number of rows (``torch.ops.mkldnn._reorder_linear_weight``,
what ``torch.compile``'s CPU backend does for frozen weights); then a product reads the
packed copy once: 1.25-1.4x the read time at 8 rows in the same measurement. The packed copy
costs the weight's memory again, so it is made only when a batch step first needs it.
"""

import logging
from typing import Optional

import torch

PACK_ROWS = 8  # the row count the weight is packed for (it serves 2..16 rows)


def packing_available() -> bool:
    """Whether this torch build has oneDNN's prepacked linear (CPU builds with MKL-DNN)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class PackedWeight:
    """A oneDNN-packed copy of an (out, in) weight, remade when the weight is replaced."""

    def __init__(self):
        self._key = None
        self._packed: Optional[torch.Tensor] = None

    def get(self, weight: torch.Tensor) -> torch.Tensor:
        key = (weight.data_ptr(), weight._version, tuple(weight.shape), weight.dtype)
        if key != self._key:
            logging.info(
                "packing a %s weight for batched decode steps (+%.0f MB)",
                tuple(weight.shape),
                weight.numel() * weight.element_size() / 1e6,
            )
            with torch.no_grad():
                self._packed = torch.ops.mkldnn._reorder_linear_weight(
                    weight.detach().contiguous(), PACK_ROWS
                )
            self._key = key
        return self._packed

    def linear(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``F.linear(x, weight)`` through the packed copy (x: (rows, in), float32 on CPU)."""
        return torch.ops.mkldnn._linear_pointwise(x, self.get(weight), None, "none", [], "")
