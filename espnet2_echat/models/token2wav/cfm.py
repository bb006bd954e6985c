"""Conditional flow matching of CosyVoice (``cosyvoice.flow.flow_matching.ConditionalCFM``).

Differences from the reference, all on purpose:
- the initial noise is an explicit argument (or drawn from a caller's ``torch.Generator``),
  never silently from the global RNG, so synthesis is reproducible;
- the number of Euler steps is an argument (the reference hard-codes 10);
- the streaming flow cache keeps ``cache_frames`` trailing frames, chosen by the caller
  (the reference hard-codes 34, a 50 Hz value; see ``streaming``).
"""

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F


class ConditionalCFM(torch.nn.Module):
    """Euler ODE solver with a cosine time schedule and classifier-free guidance.

    Args:
        estimator: The velocity estimator (``ConditionalDecoder``).
        sigma_min: Minimum noise level of the OT path (training).
        t_scheduler: ``cosine`` or ``linear`` time schedule.
        training_cfg_rate: Probability of dropping the conditions in training.
        inference_cfg_rate: Guidance weight (v = (1 + w) v_cond - w v_uncond).
    """

    def __init__(
        self,
        estimator: torch.nn.Module,
        sigma_min: float = 1e-6,
        t_scheduler: str = "cosine",
        training_cfg_rate: float = 0.2,
        inference_cfg_rate: float = 0.7,
    ):
        super().__init__()
        if t_scheduler not in ("cosine", "linear"):
            raise ValueError(
                f"t_scheduler must be 'cosine' or 'linear', got {t_scheduler!r}"
            )
        self.estimator = estimator
        self.sigma_min = sigma_min
        self.t_scheduler = t_scheduler
        self.training_cfg_rate = training_cfg_rate
        self.inference_cfg_rate = inference_cfg_rate

    def time_span(
        self, n_timesteps: int, device=None, dtype=torch.float32
    ) -> torch.Tensor:
        """The ``n_timesteps + 1`` time points of the solver."""
        t_span = torch.linspace(0, 1, n_timesteps + 1, device=device, dtype=dtype)
        if self.t_scheduler == "cosine":
            t_span = 1 - torch.cos(t_span * 0.5 * torch.pi)
        return t_span

    @staticmethod
    def apply_cache(
        z: torch.Tensor,
        mu: torch.Tensor,
        cache: torch.Tensor,
        prompt_len: int,
        cache_frames: int,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Overwrite the first frames of ``z`` and ``mu`` by the cache; build the next cache.

        Args:
            z: (1, 80, T) initial noise.
            mu: (1, 80, T) encoder condition.
            cache: (1, 80, C, 2) previous cache of [z, mu] (C = 0 for the first chunk).
            prompt_len: Prompt frames at the start of the sequence.
            cache_frames: Trailing frames kept for the next chunk.

        Returns:
            (z, mu, new_cache), z and mu as new tensors (the inputs are not modified).
        """
        z, mu = z.clone(), mu.clone()
        size = cache.shape[2]
        if size != 0:
            z[:, :, :size] = cache[:, :, :, 0]
            mu[:, :, :size] = cache[:, :, :, 1]
        z_cache = torch.cat([z[:, :, :prompt_len], z[:, :, -cache_frames:]], dim=2)
        mu_cache = torch.cat([mu[:, :, :prompt_len], mu[:, :, -cache_frames:]], dim=2)
        return z, mu, torch.stack([z_cache, mu_cache], dim=-1)

    def solve_euler(
        self,
        x: torch.Tensor,
        mu: torch.Tensor,
        mask: torch.Tensor,
        spks: torch.Tensor,
        cond: torch.Tensor,
        n_timesteps: int = 10,
        trace: Optional[Dict[str, List[torch.Tensor]]] = None,
    ) -> torch.Tensor:
        """Integrate from noise ``x`` (t = 0) to a mel (t = 1).

        Args:
            x: (B, 80, T) initial noise.
            mu, mask, spks, cond: the estimator's conditions.
            n_timesteps: Euler steps.
            trace: If given, receives ``t`` (each step's time), ``x`` (trajectory incl.
                x_0) and ``v`` (the raw [cond; uncond] estimator outputs).

        Returns:
            (B, 80, T) float32 sample.
        """
        t_span = self.time_span(n_timesteps, device=mu.device, dtype=mu.dtype)
        # Same float32 update order as the reference: t += dt; dt = t_span[k + 1] - t.
        t = t_span[0].unsqueeze(0)
        dt = t_span[1] - t_span[0]
        b = x.shape[0]
        mask_in = torch.cat([mask, mask], dim=0)
        mu_in = torch.cat([mu, torch.zeros_like(mu)], dim=0)
        spks_in = torch.cat([spks, torch.zeros_like(spks)], dim=0)
        cond_in = torch.cat([cond, torch.zeros_like(cond)], dim=0)
        if trace is not None:
            trace.setdefault("x", []).append(x)
        w = self.inference_cfg_rate
        for step in range(1, len(t_span)):
            t_in = t.expand(2 * b)
            v = self.estimator(
                torch.cat([x, x], dim=0), mask_in, mu_in, t_in, spks_in, cond_in
            )
            if trace is not None:
                trace.setdefault("t", []).append(t.clone())
                trace.setdefault("v", []).append(v)
            v_cond, v_uncond = torch.split(v, [b, b], dim=0)
            x = x + dt * ((1.0 + w) * v_cond - w * v_uncond)
            t = t + dt
            if trace is not None:
                trace["x"].append(x)
            if step < len(t_span) - 1:
                dt = t_span[step + 1] - t
        return x.float()

    def compute_loss(
        self,
        x1: torch.Tensor,
        mask: torch.Tensor,
        mu: torch.Tensor,
        spks: torch.Tensor,
        cond: torch.Tensor,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        """Conditional flow-matching loss (masked MSE on the OT velocity).

        Args:
            x1: (B, 80, T) target mel.
            mask: (B, 1, T) frame mask.
            mu: (B, 80, T) encoder condition.
            spks: (B, 80) projected speaker embedding.
            cond: (B, 80, T) prompt-mel condition.
            generator: Optional RNG for t, noise and condition dropout.

        Returns:
            Scalar loss.
        """
        b = mu.shape[0]
        t = torch.rand([b, 1, 1], device=mu.device, dtype=mu.dtype, generator=generator)
        if self.t_scheduler == "cosine":
            t = 1 - torch.cos(t * 0.5 * torch.pi)
        z = torch.randn(x1.shape, device=x1.device, dtype=x1.dtype, generator=generator)
        y = (1 - (1 - self.sigma_min) * t) * z + t * x1
        u = x1 - (1 - self.sigma_min) * z
        if self.training_cfg_rate > 0:
            keep = (
                torch.rand(b, device=x1.device, generator=generator)
                > self.training_cfg_rate
            ).to(mu.dtype)
            mu = mu * keep.view(-1, 1, 1)
            spks = spks * keep.view(-1, 1)
            cond = cond * keep.view(-1, 1, 1)
        pred = self.estimator(y, mask, mu, t.view(b), spks, cond)
        return F.mse_loss(pred * mask, u * mask, reduction="sum") / (
            torch.sum(mask) * u.shape[1]
        )
