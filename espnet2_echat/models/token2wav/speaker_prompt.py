"""The speaker prompt a token2wav model speaks with: prompt mel, prompt tokens, x-vector."""

from dataclasses import dataclass

import torch


@dataclass
class SpeakerPrompt:
    """A voice prompt for zero-shot token2wav (batch 1).

    Attributes:
        prompt_token: (1, Np) int64 speech tokens of the prompt audio (Np may be 0).
        prompt_feat: (1, T, 80) log-mel of the prompt audio (T may be 0).
        embedding: (1, 192) speaker x-vector (CAM++ or a stand-in), not normalised.
    """

    prompt_token: torch.Tensor
    prompt_feat: torch.Tensor
    embedding: torch.Tensor

    def check(self, vocab_size: int, num_mels: int, spk_embed_dim: int) -> None:
        """Raise ValueError naming the field that does not fit the model."""
        if self.prompt_token.dim() != 2 or self.prompt_token.shape[0] != 1:
            raise ValueError(
                f"prompt_token must be (1, Np), got {tuple(self.prompt_token.shape)}"
            )
        if self.prompt_token.numel() and (
            int(self.prompt_token.min()) < 0
            or int(self.prompt_token.max()) >= vocab_size
        ):
            raise ValueError(f"prompt_token ids must lie in [0, {vocab_size - 1}]")
        if (
            self.prompt_feat.dim() != 3
            or self.prompt_feat.shape[0] != 1
            or self.prompt_feat.shape[2] != num_mels
        ):
            raise ValueError(
                f"prompt_feat must be (1, T, {num_mels}), got {tuple(self.prompt_feat.shape)}"
            )
        if (self.prompt_token.shape[1] == 0) != (self.prompt_feat.shape[1] == 0):
            raise ValueError(
                "prompt_token and prompt_feat must both be empty or both be given "
                f"(got {self.prompt_token.shape[1]} tokens, {self.prompt_feat.shape[1]} frames)"
            )
        if tuple(self.embedding.shape) != (1, spk_embed_dim):
            raise ValueError(
                f"embedding must be (1, {spk_embed_dim}), got {tuple(self.embedding.shape)}"
            )


def standin_speaker_embedding(log_mel: torch.Tensor, dim: int = 192) -> torch.Tensor:
    """A STAND-IN for the CAM++ x-vector, for corpora and recipes without CAM++.

    It is the per-bin mean and standard deviation of the (B, T, 80) log-mel, mapped to
    ``dim`` values by a fixed seeded random projection. It carries the coarse spectral
    envelope of the voice (enough to tell a tiny model's speakers apart), nothing a
    speaker-verification model learns; a model trained with it must be used with it.

    Returns:
        (B, dim) embeddings.
    """
    stats = torch.cat([log_mel.mean(dim=1), log_mel.std(dim=1, unbiased=False)], dim=-1)
    projection = (
        torch.randn(stats.shape[-1], dim, generator=torch.Generator().manual_seed(192))
        / stats.shape[-1] ** 0.5
    )
    return stats @ projection.to(stats)
