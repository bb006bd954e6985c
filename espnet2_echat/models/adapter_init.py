"""How the adapter's output projection starts (config ``adapter_proj_init``).

The adapter ends in a LayerNorm and a Linear, so with PyTorch's default initialisation each
audio embedding it writes has an RMS near 0.5 per dimension. A real LLM's text
embeddings are much smaller (SmolLM2-135M: 0.13; Qwen2.5: ~0.02), so the first audio
embeddings are 4-30x the scale of every text embedding around them, and a frozen pre-norm
LLM spends its first steps of training reading mostly their size. ``embedding_rms`` scales
the projection's weight so the output RMS (measured on one random input) equals that of the
LLM's input embedding table (the bias starts at zero), a common start for a projector trained into a frozen LLM.
It only sets the start: a checkpoint loaded afterwards (``--init_param``, resume, inference)
replaces it.
"""

import torch
from torch import nn

ADAPTER_PROJ_INITS = ("default", "embedding_rms")


def init_adapter_projection(adapter: nn.Module, causal_lm: nn.Module, how: str) -> None:
    """Re-initialise ``adapter.proj`` in place according to ``how`` (see the module doc)."""
    if how not in ADAPTER_PROJ_INITS:
        raise ValueError(f"adapter_proj_init must be one of {ADAPTER_PROJ_INITS}, got {how!r}")
    if how == "default":
        return
    table = causal_lm.get_input_embeddings().weight
    target_rms = float(table.float().pow(2).mean().sqrt())
    proj = adapter.proj
    with torch.no_grad():
        if proj.bias is not None:
            proj.bias.zero_()
        # the projection is linear, so one measured forward gives the scale: the adapter
        # ends in a LayerNorm, which makes its output scale nearly independent of the input's
        frames = torch.randn(
            1, 200, proj.in_features, generator=torch.Generator().manual_seed(0)
        ).to(proj.weight)
        was_training = adapter.training
        out, _ = adapter.eval()(frames, torch.tensor([200]))
        adapter.train(was_training)
        proj.weight.mul_(target_rms / float(out.float().pow(2).mean().sqrt()))
