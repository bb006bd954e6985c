"""F0 predictor of HiFT (``cosyvoice.hifigan.f0_predictor.ConvRNNF0Predictor``)."""

import torch
from torch.nn.utils.parametrizations import weight_norm


class ConvRNNF0Predictor(torch.nn.Module):
    """Five weight-normed Conv1d(k3) + ELU layers, then Linear -> |.|: mel -> F0 in Hz.

    Args:
        num_class: Output size (1).
        in_channels: Mel bins.
        cond_channels: Hidden channels.
    """

    def __init__(
        self, num_class: int = 1, in_channels: int = 80, cond_channels: int = 512
    ):
        super().__init__()
        layers = []
        for i in range(5):
            layers += [
                weight_norm(
                    torch.nn.Conv1d(
                        in_channels if i == 0 else cond_channels,
                        cond_channels,
                        kernel_size=3,
                        padding=1,
                    )
                ),
                torch.nn.ELU(),
            ]
        self.condnet = torch.nn.Sequential(*layers)
        self.classifier = torch.nn.Linear(cond_channels, num_class)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 80, T) mel -> (B, T) F0."""
        x = self.condnet(x).transpose(1, 2)
        return torch.abs(self.classifier(x).squeeze(-1))
