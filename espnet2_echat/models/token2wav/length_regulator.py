"""Interpolating length regulator of CosyVoice (``cosyvoice.flow.length_regulator``)."""

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from espnet.nets.pytorch_backend.nets_utils import make_pad_mask


class InterpolateRegulator(torch.nn.Module):
    """Linear interpolation of token features to mel frames, then a conv stack.

    Args:
        channels: Feature channels (80: the encoder is projected to mel size first).
        sampling_ratios: One Conv1d + GroupNorm + Mish block per entry.
        out_channels: Output channels (default: ``channels``).
        groups: GroupNorm groups.
        head_tail_tokens: In inference, generated token sequences longer than twice this
            are interpolated as head / middle / tail so that chunk boundaries fall on
            known mel frames (20 in CosyVoice).
    """

    def __init__(
        self,
        channels: int = 80,
        sampling_ratios: Sequence[int] = (1, 1, 1, 1),
        out_channels: int = None,
        groups: int = 1,
        head_tail_tokens: int = 20,
    ):
        super().__init__()
        out_channels = out_channels or channels
        layers = []
        for _ in sampling_ratios:
            layers += [
                torch.nn.Conv1d(channels, channels, 3, 1, 1),
                torch.nn.GroupNorm(groups, channels),
                torch.nn.Mish(),
            ]
        layers.append(torch.nn.Conv1d(channels, out_channels, 1, 1))
        self.model = torch.nn.Sequential(*layers)
        self.head_tail_tokens = head_tail_tokens

    def forward(
        self, x: torch.Tensor, ylens: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Training path: stretch each (B, T, D) sequence to ``ylens`` frames."""
        mask = (~make_pad_mask(ylens)).to(x).unsqueeze(-1)
        x = F.interpolate(
            x.transpose(1, 2).contiguous(), size=int(ylens.max()), mode="linear"
        )
        out = self.model(x).transpose(1, 2).contiguous()
        return out * mask, ylens

    def inference(
        self,
        x1: torch.Tensor,
        x2: torch.Tensor,
        mel_len1: int,
        mel_len2: int,
        input_frame_rate: int,
        sample_rate: int = 22050,
        hop_size: int = 256,
    ) -> torch.Tensor:
        """Inference path: prompt part ``x1`` and generated part ``x2`` separately.

        Args:
            x1: (1, Np, D) prompt-token features (Np may be 0).
            x2: (1, N, D) generated-token features.
            mel_len1: Prompt mel frames.
            mel_len2: Generated mel frames.
            input_frame_rate: Token rate in Hz; the head and tail pieces get
                ``int(head_tail_tokens / input_frame_rate * sample_rate / hop_size)``
                frames (the reference's float expression, evaluated in the same order).

        Returns:
            (1, mel_len1 + mel_len2, D_out).
        """
        n = self.head_tail_tokens
        x2 = x2.transpose(1, 2).contiguous()
        if x2.shape[2] > 2 * n:
            edge = int(n / input_frame_rate * sample_rate / hop_size)
            x2 = torch.cat(
                [
                    F.interpolate(x2[:, :, :n].contiguous(), size=edge, mode="linear"),
                    F.interpolate(
                        x2[:, :, n:-n].contiguous(),
                        size=mel_len2 - 2 * edge,
                        mode="linear",
                    ),
                    F.interpolate(x2[:, :, -n:].contiguous(), size=edge, mode="linear"),
                ],
                dim=2,
            )
        else:
            x2 = F.interpolate(x2, size=mel_len2, mode="linear")
        if x1.shape[1] != 0:
            x1 = F.interpolate(
                x1.transpose(1, 2).contiguous(), size=mel_len1, mode="linear"
            )
            x2 = torch.cat([x1, x2], dim=2)
        return self.model(x2).transpose(1, 2).contiguous()
