"""Token-to-mel flow model (CosyVoice ``MaskedDiffWithXvec``)."""

import random
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from espnet.nets.pytorch_backend.nets_utils import make_pad_mask

from espnet2_echat.models.token2wav.cfm import ConditionalCFM
from espnet2_echat.models.token2wav.estimator import ConditionalDecoder
from espnet2_echat.models.token2wav.flow_encoder import FlowConformerEncoder
from espnet2_echat.models.token2wav.length_regulator import InterpolateRegulator


@dataclass
class FlowConditions:
    """Everything the CFM solver needs for one utterance (batch 1)."""

    spks: torch.Tensor  # (1, 80) projected speaker embedding
    mu: torch.Tensor  # (1, 80, T) regulated encoder output
    cond: torch.Tensor  # (1, 80, T) prompt mel then zeros
    mask: torch.Tensor  # (1, 1, T)
    mel_len1: int  # prompt frames
    mel_len2: int  # generated frames


class FlowModel(torch.nn.Module):
    """Speech tokens + speaker x-vector + prompt mel -> 80-bin mel at ``sample_rate / hop``.

    Args:
        vocab_size: Speech-token vocabulary (4096).
        input_size: Token-embedding size.
        output_size: Mel bins.
        spk_embed_dim: Speaker x-vector size (192, CAM++).
        input_frame_rate: Token rate in Hz (25 for CosyVoice-300M-25Hz).
        sample_rate: Output sampling rate.
        hop_size: Mel hop in samples.
        encoder_conf: ``FlowConformerEncoder`` arguments.
        length_regulator_conf: ``InterpolateRegulator`` arguments.
        estimator_conf: ``ConditionalDecoder`` arguments.
        cfm_conf: ``ConditionalCFM`` arguments (without the estimator).
        prompt_cond_prob: Training: probability of giving a random prefix of the target
            mel as the condition (CosyVoice uses 0.5, up to 30 % of the frames).
    """

    def __init__(
        self,
        vocab_size: int = 4096,
        input_size: int = 512,
        output_size: int = 80,
        spk_embed_dim: int = 192,
        input_frame_rate: int = 25,
        sample_rate: int = 22050,
        hop_size: int = 256,
        encoder_conf: Optional[Dict] = None,
        length_regulator_conf: Optional[Dict] = None,
        estimator_conf: Optional[Dict] = None,
        cfm_conf: Optional[Dict] = None,
        prompt_cond_prob: float = 0.5,
    ):
        super().__init__()
        self.vocab_size = vocab_size
        self.output_size = output_size
        self.spk_embed_dim = spk_embed_dim
        self.input_frame_rate = input_frame_rate
        self.sample_rate = sample_rate
        self.hop_size = hop_size
        self.prompt_cond_prob = prompt_cond_prob
        self.input_embedding = torch.nn.Embedding(vocab_size, input_size)
        self.spk_embed_affine_layer = torch.nn.Linear(spk_embed_dim, output_size)
        self.encoder = FlowConformerEncoder(
            input_size=input_size, **(encoder_conf or {})
        )
        self.encoder_proj = torch.nn.Linear(self.encoder.output_size(), output_size)
        self.length_regulator = InterpolateRegulator(
            channels=output_size, **(length_regulator_conf or {})
        )
        estimator = ConditionalDecoder(
            in_channels=4 * output_size,
            out_channels=output_size,
            **(estimator_conf or {}),
        )
        self.decoder = ConditionalCFM(estimator, **(cfm_conf or {}))

    # ----------------------------------------------------------------- pieces
    def num_mel_frames(self, num_tokens: int) -> int:
        """Mel frames for ``num_tokens`` tokens (the reference's float expression)."""
        return int(
            num_tokens / self.input_frame_rate * self.sample_rate / self.hop_size
        )

    def project_speaker(self, embedding: torch.Tensor) -> torch.Tensor:
        """L2-normalise the x-vector and project it to mel size: (B, 192) -> (B, 80)."""
        return self.spk_embed_affine_layer(F.normalize(embedding, dim=1))

    def encode(self, tokens: torch.Tensor, token_lens: torch.Tensor) -> torch.Tensor:
        """Embed and encode token ids: (B, L) -> (B, L, 80) (after ``encoder_proj``)."""
        mask = (~make_pad_mask(token_lens, maxlen=tokens.shape[1])).to(tokens.device)
        x = (
            self.input_embedding(torch.clamp(tokens, min=0))
            * mask.unsqueeze(-1).float()
        )
        h, _, _ = self.encoder(x, token_lens)
        return self.encoder_proj(h)

    def conditions(
        self,
        token: torch.Tensor,
        prompt_token: torch.Tensor,
        prompt_feat: torch.Tensor,
        embedding: torch.Tensor,
    ) -> FlowConditions:
        """Build the solver's conditions for one utterance.

        Args:
            token: (1, N) speech tokens to synthesise.
            prompt_token: (1, Np) prompt speech tokens (Np may be 0).
            prompt_feat: (1, T_prompt, 80) prompt mel (T_prompt may be 0).
            embedding: (1, 192) speaker x-vector (not normalised).
        """
        if token.shape[0] != 1:
            raise ValueError(
                f"flow inference takes one utterance, got batch {token.shape[0]}"
            )
        spks = self.project_speaker(embedding)
        n_prompt = prompt_token.shape[1]
        tokens = torch.cat([prompt_token.to(token.dtype), token], dim=1)
        h = self.encode(tokens, torch.tensor([tokens.shape[1]], device=token.device))
        mel_len1, mel_len2 = prompt_feat.shape[1], self.num_mel_frames(token.shape[1])
        mu = self.length_regulator.inference(
            h[:, :n_prompt],
            h[:, n_prompt:],
            mel_len1,
            mel_len2,
            self.input_frame_rate,
            self.sample_rate,
            self.hop_size,
        ).transpose(1, 2)
        total = mel_len1 + mel_len2
        cond = torch.zeros(1, self.output_size, total, device=mu.device, dtype=mu.dtype)
        cond[:, :, :mel_len1] = prompt_feat.transpose(1, 2)
        mask = torch.ones(1, 1, total, device=mu.device, dtype=mu.dtype)
        return FlowConditions(spks, mu, cond, mask, mel_len1, mel_len2)

    # ----------------------------------------------------------------- inference
    @torch.no_grad()
    def inference(
        self,
        token: torch.Tensor,
        prompt_token: torch.Tensor,
        prompt_feat: torch.Tensor,
        embedding: torch.Tensor,
        noise: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
        n_timesteps: int = 10,
        temperature: float = 1.0,
        trace: Optional[Dict[str, List[torch.Tensor]]] = None,
    ) -> torch.Tensor:
        """Offline synthesis of the generated part's mel, (1, 80, mel_len2).

        ``noise`` (1, 80, mel_len1 + mel_len2) is x_0; without it, it is drawn with
        ``torch.randn(..., generator=generator) * temperature``.
        """
        c = self.conditions(token, prompt_token, prompt_feat, embedding)
        z = self.draw_noise(c.mu, noise, generator, temperature)
        mel = self.decoder.solve_euler(
            z, c.mu, c.mask, c.spks, c.cond, n_timesteps, trace
        )
        return mel[:, :, c.mel_len1 :]

    @staticmethod
    def draw_noise(
        mu: torch.Tensor,
        noise: Optional[torch.Tensor],
        generator: Optional[torch.Generator],
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Return the given noise (checked) or a fresh draw shaped like ``mu``."""
        if noise is None:
            return (
                torch.randn(
                    mu.shape, generator=generator, device=mu.device, dtype=mu.dtype
                )
                * temperature
            )
        if noise.shape != mu.shape:
            raise ValueError(
                f"noise must have shape {tuple(mu.shape)}, got {tuple(noise.shape)}"
            )
        return noise.to(mu)

    # ----------------------------------------------------------------- training
    def forward(
        self,
        token: torch.Tensor,
        token_lens: torch.Tensor,
        feat: torch.Tensor,
        feat_lens: torch.Tensor,
        embedding: torch.Tensor,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        """CFM training loss.

        Args:
            token: (B, L) speech tokens (padded).
            token_lens: (B,) token counts.
            feat: (B, T, 80) target mel (padded).
            feat_lens: (B,) mel frames.
            embedding: (B, 192) speaker x-vectors.
            generator: Optional RNG (flow time, noise, condition dropout).
        """
        spks = self.project_speaker(embedding)
        h = self.encode(token, token_lens)
        h, _ = self.length_regulator(h, feat_lens)
        feat = feat[:, : h.shape[1]]
        conds = torch.zeros_like(feat)
        for i, n in enumerate(feat_lens.tolist()):
            if random.random() < self.prompt_cond_prob:
                k = random.randint(0, int(0.3 * n))
                conds[i, :k] = feat[i, :k]
        mask = (~make_pad_mask(feat_lens, maxlen=h.shape[1])).to(h).unsqueeze(1)
        return self.decoder.compute_loss(
            feat.transpose(1, 2).contiguous(),
            mask,
            h.transpose(1, 2).contiguous(),
            spks,
            conds.transpose(1, 2).contiguous(),
            generator=generator,
        )
