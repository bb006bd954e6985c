"""U-Net velocity estimator of the CosyVoice flow (``cosyvoice.flow.decoder.ConditionalDecoder``).

Matcha-TTS's building blocks (``matcha.models.components``) and the diffusers
``BasicTransformerBlock`` they use are re-written here in plain torch: neither Matcha nor
diffusers is a dependency, the blocks are small, and the module and parameter names are
kept so that ``flow.pt`` ``decoder.estimator.*`` keys load one to one.
"""

import math
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F


class SinusoidalPosEmb(torch.nn.Module):
    """Sinusoidal embedding of the flow time ``t`` (scaled by 1000)."""

    def __init__(self, dim: int):
        super().__init__()
        if dim % 2 != 0:
            raise ValueError(f"SinusoidalPosEmb needs an even dim, got {dim}")
        self.dim = dim

    def forward(self, x: torch.Tensor, scale: float = 1000) -> torch.Tensor:
        if x.ndim < 1:
            x = x.unsqueeze(0)
        half_dim = self.dim // 2
        emb = math.log(10000) / (half_dim - 1)
        emb = torch.exp(torch.arange(half_dim, device=x.device).float() * -emb)
        emb = scale * x.unsqueeze(1) * emb.unsqueeze(0)
        return torch.cat((emb.sin(), emb.cos()), dim=-1)


class TimestepEmbedding(torch.nn.Module):
    """Linear -> SiLU -> Linear on the sinusoidal time embedding."""

    def __init__(self, in_channels: int, time_embed_dim: int):
        super().__init__()
        self.linear_1 = torch.nn.Linear(in_channels, time_embed_dim)
        self.act = torch.nn.SiLU()
        self.linear_2 = torch.nn.Linear(time_embed_dim, time_embed_dim)

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(sample)))


class Block1D(torch.nn.Module):
    """Conv1d(k3) -> GroupNorm -> Mish, masked in and out."""

    def __init__(self, dim: int, dim_out: int, groups: int = 8):
        super().__init__()
        self.block = torch.nn.Sequential(
            torch.nn.Conv1d(dim, dim_out, 3, padding=1),
            torch.nn.GroupNorm(groups, dim_out),
            torch.nn.Mish(),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.block(x * mask) * mask


class ResnetBlock1D(torch.nn.Module):
    """Two ``Block1D`` with the time embedding added in between, plus a 1x1 residual."""

    def __init__(self, dim: int, dim_out: int, time_emb_dim: int, groups: int = 8):
        super().__init__()
        self.mlp = torch.nn.Sequential(
            torch.nn.Mish(), torch.nn.Linear(time_emb_dim, dim_out)
        )
        self.block1 = Block1D(dim, dim_out, groups=groups)
        self.block2 = Block1D(dim_out, dim_out, groups=groups)
        self.res_conv = torch.nn.Conv1d(dim, dim_out, 1)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, time_emb: torch.Tensor
    ) -> torch.Tensor:
        h = self.block1(x, mask)
        h = h + self.mlp(time_emb).unsqueeze(-1)
        h = self.block2(h, mask)
        return h + self.res_conv(x * mask)


class Downsample1D(torch.nn.Module):
    """Strided Conv1d (x1/2 in time)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = torch.nn.Conv1d(dim, dim, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample1D(torch.nn.Module):
    """Transposed Conv1d (x2 in time)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = torch.nn.ConvTranspose1d(dim, dim, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


ATTENTION_QUERY_BLOCK = 128  # queries a block in the CPU bfloat16 attention (attend)


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: Optional[torch.Tensor]
) -> torch.Tensor:
    """``scaled_dot_product_attention(q, k, v, attn_mask=bias)``; bfloat16 on CPU as two
    batched products and a softmax per block of ``ATTENTION_QUERY_BLOCK`` queries instead.

    At the estimator's sizes (T ~ 600 frames, 8 heads of 64, the CFG pair) PyTorch's CPU flash
    kernel ran bfloat16 no faster than float32 (11.4 ms a call on the 2-core AMD EPYC VM),
    the whole score matrix at once 13.5-14 ms, and blocks of 128 queries, whose scores stay
    in cache between the products and the softmax, 6.6-6.9 ms (one script, three runs;
    benchmarks/token2wav_rtf.md has the whole synthesis).
    """
    if q.dtype != torch.bfloat16 or q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    q = q * q.shape[-1] ** -0.5
    keys = k.transpose(-1, -2)
    blocks = []
    for start in range(0, q.shape[-2], ATTENTION_QUERY_BLOCK):
        end = start + ATTENTION_QUERY_BLOCK
        scores = q[..., start:end, :] @ keys
        if bias is not None:
            scores = scores + (bias[..., start:end, :] if bias.shape[-2] > 1 else bias)
        blocks.append(scores.softmax(dim=-1) @ v)
    return torch.cat(blocks, dim=-2)


class Attention(torch.nn.Module):
    """diffusers ``Attention`` (self-attention, no q/k/v bias) with an additive key bias."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float = 0.0):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = torch.nn.Linear(dim, inner, bias=False)
        self.to_k = torch.nn.Linear(dim, inner, bias=False)
        self.to_v = torch.nn.Linear(dim, inner, bias=False)
        self.to_out = torch.nn.ModuleList(
            [torch.nn.Linear(inner, dim), torch.nn.Dropout(dropout)]
        )

    def forward(self, x: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (
            proj(x).view(b, t, self.heads, -1).transpose(1, 2)
            for proj in (self.to_q, self.to_k, self.to_v)
        )
        out = attend(q, k, v, bias)
        out = out.transpose(1, 2).reshape(b, t, -1)
        return self.to_out[1](self.to_out[0](out))


class GELUProjection(torch.nn.Module):
    """diffusers ``GELU``: Linear then exact GELU."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = torch.nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x))


class FeedForward(torch.nn.Module):
    """diffusers ``FeedForward`` with the ``gelu`` activation (mult 4)."""

    def __init__(self, dim: int, dropout: float = 0.0, mult: int = 4):
        super().__init__()
        inner = dim * mult
        self.net = torch.nn.ModuleList(
            [
                GELUProjection(dim, inner),
                torch.nn.Dropout(dropout),
                torch.nn.Linear(inner, dim),
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.net:
            x = module(x)
        return x


class BasicTransformerBlock(torch.nn.Module):
    """Pre-LN self-attention + feed-forward block (diffusers/Matcha, no cross-attention)."""

    def __init__(
        self,
        dim: int,
        num_attention_heads: int,
        attention_head_dim: int,
        dropout: float,
    ):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(dim)
        self.attn1 = Attention(dim, num_attention_heads, attention_head_dim, dropout)
        self.norm3 = torch.nn.LayerNorm(dim)
        self.ff = FeedForward(dim, dropout=dropout)
        self.matmul_dtype: Optional[torch.dtype] = None

    def set_matmul_dtype(self, dtype: Optional[torch.dtype]) -> None:
        """Run attention and feed-forward in ``dtype`` (None: the parameters' own dtype).

        The residual stream and the layer norms keep their dtype (float32): only the
        products (q/k/v, attention, output and feed-forward projections) and the GELU run
        in ``dtype``, whose parameters are converted in place (inference only).
        """
        if dtype is not None:
            self.attn1.to(dtype)
            self.ff.to(dtype)
        self.matmul_dtype = dtype

    def forward(self, x: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        dtype = self.matmul_dtype
        if dtype is None:
            x = self.attn1(self.norm1(x), bias) + x
            return self.ff(self.norm3(x)) + x
        bias = None if bias is None else bias.to(dtype)
        x = self.attn1(self.norm1(x).to(dtype), bias) + x
        return self.ff(self.norm3(x).to(dtype)) + x


class ConditionalDecoder(torch.nn.Module):
    """1-D U-Net estimating the flow velocity from ``[x, mu, spks, cond]``.

    Args:
        in_channels: Channels of the packed input (x + mu + spk + cond = 320).
        out_channels: Mel bins.
        channels: Channels per U-Net level.
        dropout: Dropout in the transformer blocks.
        attention_head_dim: Per-head size.
        n_blocks: Transformer blocks per level.
        num_mid_blocks: Middle (resnet + transformer) blocks.
        num_heads: Attention heads.
        act_fn: Feed-forward activation (only ``gelu`` is used by CosyVoice-300M).
    """

    def __init__(
        self,
        in_channels: int = 320,
        out_channels: int = 80,
        channels: Sequence[int] = (256, 256),
        dropout: float = 0.0,
        attention_head_dim: int = 64,
        n_blocks: int = 4,
        num_mid_blocks: int = 12,
        num_heads: int = 8,
        act_fn: str = "gelu",
    ):
        super().__init__()
        if act_fn != "gelu":
            raise ValueError(
                f"estimator act_fn must be 'gelu' (CosyVoice-300M), got {act_fn!r}"
            )
        channels = tuple(channels)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.time_embeddings = SinusoidalPosEmb(in_channels)
        time_embed_dim = channels[0] * 4
        self.time_mlp = TimestepEmbedding(in_channels, time_embed_dim)

        def transformer_stack(dim: int) -> torch.nn.ModuleList:
            return torch.nn.ModuleList(
                [
                    BasicTransformerBlock(dim, num_heads, attention_head_dim, dropout)
                    for _ in range(n_blocks)
                ]
            )

        self.down_blocks = torch.nn.ModuleList()
        output_channel = in_channels
        for i, ch in enumerate(channels):
            input_channel, output_channel = output_channel, ch
            is_last = i == len(channels) - 1
            self.down_blocks.append(
                torch.nn.ModuleList(
                    [
                        ResnetBlock1D(input_channel, output_channel, time_embed_dim),
                        transformer_stack(output_channel),
                        (
                            torch.nn.Conv1d(
                                output_channel, output_channel, 3, padding=1
                            )
                            if is_last
                            else Downsample1D(output_channel)
                        ),
                    ]
                )
            )
        self.mid_blocks = torch.nn.ModuleList(
            [
                torch.nn.ModuleList(
                    [
                        ResnetBlock1D(channels[-1], output_channel, time_embed_dim),
                        transformer_stack(output_channel),
                    ]
                )
                for _ in range(num_mid_blocks)
            ]
        )
        up_channels = channels[::-1] + (channels[0],)
        self.up_blocks = torch.nn.ModuleList()
        for i in range(len(up_channels) - 1):
            output_channel = up_channels[i + 1]
            is_last = i == len(up_channels) - 2
            self.up_blocks.append(
                torch.nn.ModuleList(
                    [
                        ResnetBlock1D(
                            up_channels[i] * 2, output_channel, time_embed_dim
                        ),
                        transformer_stack(output_channel),
                        (
                            torch.nn.Conv1d(
                                output_channel, output_channel, 3, padding=1
                            )
                            if is_last
                            else Upsample1D(output_channel)
                        ),
                    ]
                )
            )
        self.final_block = Block1D(up_channels[-1], up_channels[-1])
        self.final_proj = torch.nn.Conv1d(up_channels[-1], out_channels, 1)
        self._initialize_weights()

    def _initialize_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (torch.nn.Conv1d, torch.nn.Linear)):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    torch.nn.init.constant_(m.bias, 0)
            elif isinstance(m, torch.nn.GroupNorm):
                torch.nn.init.constant_(m.weight, 1)
                torch.nn.init.constant_(m.bias, 0)

    def set_matmul_dtype(self, dtype: Optional[torch.dtype]) -> None:
        """Mixed precision for inference: every transformer block's products in ``dtype``.

        ``torch.bfloat16`` on a CPU with AMX/AVX512-BF16 (or a GPU) runs the ~85 % of the
        estimator's work that is matrix products at several times the float32 rate; the
        residual stream, norms, convolutions and the time MLP stay float32 (measured error
        in ``benchmarks/token2wav_rtf.md``). Converts those blocks' parameters in place.
        """
        for module in self.modules():
            if isinstance(module, BasicTransformerBlock):
                module.set_matmul_dtype(dtype)

    @staticmethod
    def _key_bias(mask: torch.Tensor, dtype: torch.dtype) -> Optional[torch.Tensor]:
        # CosyVoice's mask_to_bias: -1e10 on padded keys, broadcast over heads and queries.
        # A mask without padding (batch-1 inference) adds zeros: no bias at all is the
        # same result and lets attention take its unmasked kernel.
        if bool(mask.all()):
            return None
        return ((1.0 - mask.to(dtype)) * -1.0e10).unsqueeze(1)

    def _run_level(self, resnet, blocks, x, mask, t):
        x = resnet(x, mask, t)
        x = x.transpose(1, 2).contiguous()
        bias = self._key_bias(mask, x.dtype)
        for block in blocks:
            x = block(x, bias)
        return x.transpose(1, 2).contiguous()

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        mu: torch.Tensor,
        t: torch.Tensor,
        spks: Optional[torch.Tensor] = None,
        cond: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Estimate the velocity.

        Args:
            x: (B, 80, T) current sample.
            mask: (B, 1, T) frame mask.
            mu: (B, 80, T) encoder output after the length regulator.
            t: (B,) flow time in [0, 1].
            spks: (B, 80) projected speaker embedding.
            cond: (B, 80, T) prompt-mel condition.

        Returns:
            (B, 80, T) velocity.
        """
        t = self.time_mlp(self.time_embeddings(t).to(t.dtype))
        parts = [x, mu]
        if spks is not None:
            parts.append(spks.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        if cond is not None:
            parts.append(cond)
        x = torch.cat(parts, dim=1)

        hiddens: List[torch.Tensor] = []
        masks = [mask]
        for resnet, blocks, downsample in self.down_blocks:
            mask_down = masks[-1]
            x = self._run_level(resnet, blocks, x, mask_down, t)
            hiddens.append(x)
            x = downsample(x * mask_down)
            masks.append(mask_down[:, :, ::2])
        masks = masks[:-1]
        mask_mid = masks[-1]
        for resnet, blocks in self.mid_blocks:
            x = self._run_level(resnet, blocks, x, mask_mid, t)
        for resnet, blocks, upsample in self.up_blocks:
            mask_up = masks.pop()
            skip = hiddens.pop()
            x = torch.cat([x[:, :, : skip.shape[-1]], skip], dim=1)
            x = self._run_level(resnet, blocks, x, mask_up, t)
            x = upsample(x * mask_up)
        x = self.final_block(x, mask_up)
        return self.final_proj(x * mask_up) * mask
