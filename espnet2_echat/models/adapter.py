"""OSUM-EChat adapter (docs/model.md#adapter): causal conv downsampling x4, a 4-block transformer, projection."""

from typing import Tuple

import torch
from espnet.nets.pytorch_backend.transformer.attention import MultiHeadedAttention
from espnet.nets.pytorch_backend.transformer.encoder_layer import EncoderLayer
from espnet.nets.pytorch_backend.transformer.positionwise_feed_forward import (
    PositionwiseFeedForward,
)
from torch import nn

from espnet2_echat.models.sinusoids import StoredPositionalEncoding
from espnet2_echat.models.whisper_encoder import padding_mask


class CausalConvDownsampler(nn.Module):
    """Three causal Conv1d (left pad 2, k=3, strides 1/2/2) with GELU: 50 Hz -> 12.5 Hz.

    The ``conv`` Sequential keeps the reference's indices (``conv.{1,4,7}``); padded frames are
    not zeroed before the convolutions, as in the reference.
    """

    def __init__(self, size: int):
        super().__init__()
        layers = []
        for stride in (1, 2, 2):
            layers += [
                nn.ConstantPad1d((2, 0), 0.0),
                nn.Conv1d(size, size, kernel_size=3, stride=stride),
                nn.GELU(),
            ]
        self.conv = nn.Sequential(*layers)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, T, d) -> (B, ceil(ceil(T/2)/2), d); lengths follow the mask subsampled twice."""
        y = self.conv(x.transpose(1, 2)).transpose(1, 2)
        for _ in range(2):
            lengths = (lengths + 1) // 2
        return y, lengths


class AdapterTransformer(nn.Module):
    """WeNet ``TransformerEncoder`` as the reference configures the adapter's second part.

    Linear + LayerNorm input layer, output scaled by sqrt(d) plus the interleaved sinusoid
    (ESPnet ``PositionalEncoding``'s, held as a persistent buffer so that a converted
    checkpoint's stored table is the one computed with), pre-LN blocks with ReLU feed-forward
    and key bias, and a final LayerNorm. Built from ESPnet's layers; their LayerNorm eps (1e-12)
    is set to the reference's 1e-5. ESPnet's ``TransformerEncoder`` is not used as a whole
    because its ``linear`` input layer adds a ReLU that the reference does not have.
    """

    def __init__(
        self,
        size: int,
        attention_heads: int = 4,
        linear_units: int = 2560,
        num_blocks: int = 4,
        dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.0,
    ):
        super().__init__()
        self.embed = nn.Sequential(
            nn.Linear(size, size), nn.LayerNorm(size, eps=1e-5), nn.Dropout(dropout_rate)
        )
        self.pos_enc = StoredPositionalEncoding(size, dropout_rate)
        self.encoders = nn.ModuleList(
            EncoderLayer(
                size,
                MultiHeadedAttention(attention_heads, size, attention_dropout_rate),
                PositionwiseFeedForward(size, linear_units, dropout_rate),
                dropout_rate,
                normalize_before=True,
            )
            for _ in range(num_blocks)
        )
        for layer in self.encoders:
            layer.norm1.eps = layer.norm2.eps = 1e-5
        self.after_norm = nn.LayerNorm(size, eps=1e-5)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, d) -> (B, T, d) with padded keys masked."""
        mask = padding_mask(lengths, x.size(1))[:, None, :]
        x = self.pos_enc(self.embed(x))
        for layer in self.encoders:
            x, mask = layer(x, mask)
        return self.after_norm(x)


class EChatAdapter(nn.Module):
    """Encoder output (50 Hz, ``encoder_size``) -> LLM input embeddings (12.5 Hz, ``llm_size``)."""

    def __init__(
        self,
        encoder_size: int,
        llm_size: int,
        attention_heads: int = 4,
        linear_units: int = 2560,
        num_blocks: int = 4,
        dropout_rate: float = 0.1,
    ):
        super().__init__()
        self.downsampler = CausalConvDownsampler(encoder_size)
        self.transformer = AdapterTransformer(
            encoder_size, attention_heads, linear_units, num_blocks, dropout_rate
        )
        self.proj = nn.Linear(encoder_size, llm_size)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        x, lengths = self.downsampler(x, lengths)
        return self.proj(self.transformer(x, lengths)), lengths
