"""Whisper-style speech encoder as OSUM-EChat uses it (docs/model.md#encoder).

The transformer blocks are transformers' ``WhisperEncoderLayer`` (pre-LN, no key bias,
exact GELU), so parameter names equal those of ``WhisperEncoder`` and HF Whisper weights
load as they are. The module around them is written here because
``transformers.WhisperEncoder`` requires exactly 3000 input frames (30 s padding) and
ignores padding masks, while the reference runs on unpadded utterances with a key
padding mask and a 30000-long sinusoid table.

The sinusoid table is a persistent buffer (``positions``): the encoder computes with the
table its checkpoint stored (e.g. Whisper's float16-rounded one), see
``espnet2_echat.models.sinusoids``.
"""

from typing import Optional, Tuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoderLayer

from espnet2_echat.data.quirks import switch
from espnet2_echat.models.sinusoids import whisper_sinusoids  # noqa: F401 (public here)


def padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, max_len) bool, True on valid frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class WhisperStyleEncoder(nn.Module):
    """Conv1d stem (stride 2) + sinusoid positions + pre-LN Whisper blocks + final LayerNorm.

    Args:
        input_size: mel bins (80 for Whisper-medium).
        output_size: model width d.
        attention_heads, linear_units, num_blocks: block geometry.
        dropout_rate, attention_dropout_rate: as WeNet's encoder_conf.
        max_positions: rows of the sinusoid table (30000 in the reference = 600 s at 50 Hz;
            Whisper itself has 1500 = 30 s). Built from the formula; a checkpoint's stored
            table replaces it (``positions`` is in the state dict).
        gradient_checkpointing: recompute blocks in backward while training.
        encoder_mask_subsampling: subsample padding masks as the reference does in
            batches (see ``subsample_lengths``; ``data.quirks``); by default every utterance
            keeps ceil(L/2) frames, so a batch gives the same result as each utterance alone.
        reference_compat: the old name of ``encoder_mask_subsampling`` (used when that is
            not given).
    """

    def __init__(
        self,
        input_size: int = 80,
        output_size: int = 1024,
        attention_heads: int = 16,
        linear_units: int = 4096,
        num_blocks: int = 24,
        dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.0,
        max_positions: int = 30000,
        gradient_checkpointing: bool = False,
        reference_compat: bool = False,
        encoder_mask_subsampling: Optional[bool] = None,
    ):
        super().__init__()
        config = WhisperConfig(
            num_mel_bins=input_size,
            d_model=output_size,
            encoder_attention_heads=attention_heads,
            encoder_ffn_dim=linear_units,
            encoder_layers=num_blocks,
            dropout=dropout_rate,
            attention_dropout=attention_dropout_rate,
            activation_dropout=0.0,
            activation_function="gelu",
        )
        config._attn_implementation = "sdpa"
        self._output_size = output_size
        self.gradient_checkpointing = gradient_checkpointing
        self.encoder_mask_subsampling = switch(encoder_mask_subsampling, reference_compat)
        self.conv1 = nn.Conv1d(input_size, output_size, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(output_size, output_size, kernel_size=3, stride=2, padding=1)
        self.dropout = nn.Dropout(dropout_rate)
        self.layers = nn.ModuleList(WhisperEncoderLayer(config) for _ in range(num_blocks))
        self.layer_norm = nn.LayerNorm(output_size)
        self.register_buffer("positions", whisper_sinusoids(max_positions, output_size))

    def output_size(self) -> int:
        return self._output_size

    def subsample_lengths(self, lengths: torch.Tensor, padded_len: int) -> torch.Tensor:
        """Lengths after the stride-2 stem: ceil(L / 2).

        Under ``encoder_mask_subsampling`` the reference's mask subsampling is reproduced: WeNet
        keeps mask[(T + 1) % 2 :: 2] with T the *padded* length, so in a batch of even
        padded length an utterance of odd length L keeps floor(L / 2) frames.
        """
        start = (padded_len + 1) % 2 if self.encoder_mask_subsampling else 0
        return torch.clamp((lengths - start + 1) // 2, min=0)

    def forward(
        self, feats: torch.Tensor, feats_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, T, mel) -> (B, ceil(T/2), d) and output lengths."""
        x = nn.functional.gelu(self.conv1(feats.transpose(1, 2)))
        x = nn.functional.gelu(self.conv2(x)).transpose(1, 2)
        if x.size(1) > self.positions.size(0):
            raise ValueError(
                f"input of {feats.size(1)} frames exceeds the encoder's positional table "
                f"({self.positions.size(0)} positions after subsampling)"
            )
        x = self.dropout(x + self.positions[: x.size(1)].to(x.dtype))
        lengths = self.subsample_lengths(feats_lengths, feats.size(1))
        valid = padding_mask(lengths, x.size(1))
        mask = torch.zeros(valid.shape, dtype=x.dtype, device=x.device)
        mask = mask.masked_fill(~valid, torch.finfo(x.dtype).min)[:, None, None, :]
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                x = checkpoint(layer, x, mask, use_reentrant=False)
            else:
                x = layer(x, mask)
        return self.layer_norm(x), lengths
