"""HiFT vocoder: neural source filter + iSTFTNet (``cosyvoice.hifigan.generator``).

Module and parameter names follow CosyVoice so that ``hift.pt`` loads one to one (after
the converter maps legacy ``weight_g``/``weight_v`` to torch's weight-norm
parametrization). The sine source draws its random phase and noise from an explicit
``torch.Generator`` (or the global RNG when none is given) in the reference's order, so
a seeded generator reproduces the reference's draws.
"""

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from espnet2_echat.models.token2wav.f0_predictor import ConvRNNF0Predictor


def _padding(kernel_size: int, dilation: int = 1) -> int:
    return int((kernel_size * dilation - dilation) / 2)


def _init_conv(m: torch.nn.Module) -> None:
    if "Conv" in m.__class__.__name__:
        m.weight.data.normal_(0.0, 0.01)


class CastConv(torch.nn.Module):
    """A convolution run in ``dtype`` between float32 activations (inference).

    Its weight norm is folded into a plain weight first (the product is the same; nothing
    is recomputed per call)."""

    def __init__(self, conv: torch.nn.Module, dtype: torch.dtype):
        super().__init__()
        if parametrize.is_parametrized(conv, "weight"):
            parametrize.remove_parametrizations(conv, "weight", leave_parametrized=True)
        self.conv = conv.to(dtype)
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.to(self.dtype)).float()


class Snake(torch.nn.Module):
    """Snake activation ``x + 1/alpha * sin^2(alpha x)`` with a per-channel alpha."""

    def __init__(self, channels: int, alpha: float = 1.0):
        super().__init__()
        self.alpha = torch.nn.Parameter(torch.ones(channels) * alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.unsqueeze(0).unsqueeze(-1)
        return x + (1.0 / (alpha + 1e-9)) * torch.pow(torch.sin(x * alpha), 2)


class ResBlock(torch.nn.Module):
    """HiFi-GAN/BigVGAN residual block with Snake activations."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]):
        super().__init__()
        self.convs1 = torch.nn.ModuleList()
        self.convs2 = torch.nn.ModuleList()
        for d in dilations:
            c1 = torch.nn.Conv1d(
                channels,
                channels,
                kernel_size,
                1,
                dilation=d,
                padding=_padding(kernel_size, d),
            )
            c2 = torch.nn.Conv1d(
                channels,
                channels,
                kernel_size,
                1,
                dilation=1,
                padding=_padding(kernel_size, 1),
            )
            _init_conv(c1)
            _init_conv(c2)
            self.convs1.append(weight_norm(c1))
            self.convs2.append(weight_norm(c2))
        self.activations1 = torch.nn.ModuleList([Snake(channels) for _ in dilations])
        self.activations2 = torch.nn.ModuleList([Snake(channels) for _ in dilations])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for a1, c1, a2, c2 in zip(
            self.activations1, self.convs1, self.activations2, self.convs2
        ):
            x = c2(a2(c1(a1(x)))) + x
        return x


class SineGen(torch.nn.Module):
    """Harmonic sine source with voiced/unvoiced noise (no parameters)."""

    def __init__(
        self,
        sampling_rate: int,
        harmonic_num: int = 8,
        sine_amp: float = 0.1,
        noise_std: float = 0.003,
        voiced_threshold: float = 10,
    ):
        super().__init__()
        self.sampling_rate = sampling_rate
        self.harmonic_num = harmonic_num
        self.sine_amp = sine_amp
        self.noise_std = noise_std
        self.voiced_threshold = voiced_threshold

    @torch.no_grad()
    def forward(
        self,
        f0: torch.Tensor,
        generator: Optional[torch.Generator] = None,
        phase: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, L) sample-rate F0 in Hz -> ((B, H+1, L) sines, (B, 1, L) voiced flags).

        ``phase`` (B, H+1, 1) replaces the random initial phases (row 0 is zeroed).
        """
        b, n_harm = f0.shape[0], self.harmonic_num + 1
        f_mat = torch.cat(
            [f0 * (i + 1) / self.sampling_rate for i in range(n_harm)], dim=1
        )
        theta = 2 * np.pi * (torch.cumsum(f_mat, dim=-1) % 1)
        if phase is None:
            # torch.distributions.Uniform(-pi, pi).sample(): low + rand * (high - low)
            low = torch.tensor(-math.pi, dtype=torch.float32, device=f0.device)
            high = torch.tensor(math.pi, dtype=torch.float32, device=f0.device)
            rand = torch.rand(
                (b, n_harm, 1),
                generator=generator,
                dtype=torch.float32,
                device=f0.device,
            )
            phase = low + rand * (high - low)
        phase = phase.clone().to(f0.device)
        phase[:, 0, :] = 0
        sines = self.sine_amp * torch.sin(theta + phase)
        uv = (f0 > self.voiced_threshold).type(torch.float32)
        noise_amp = uv * self.noise_std + (1 - uv) * self.sine_amp / 3
        noise = torch.randn(
            sines.shape, generator=generator, dtype=sines.dtype, device=f0.device
        )
        return sines * uv + noise_amp * noise, uv


class SourceModuleHnNSF(torch.nn.Module):
    """Merge the harmonics into one excitation: tanh(Linear(sines))."""

    def __init__(
        self,
        sampling_rate: int,
        harmonic_num: int,
        sine_amp: float,
        noise_std: float,
        voiced_threshold: float,
    ):
        super().__init__()
        self.sine_amp = sine_amp
        self.l_sin_gen = SineGen(
            sampling_rate, harmonic_num, sine_amp, noise_std, voiced_threshold
        )
        self.l_linear = torch.nn.Linear(harmonic_num + 1, 1)

    def forward(
        self,
        f0: torch.Tensor,
        generator: Optional[torch.Generator] = None,
        phase: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """(B, 1, L) F0 -> (B, 1, L) excitation."""
        sines, uv = self.l_sin_gen(f0, generator, phase)
        source = torch.tanh(self.l_linear(sines.transpose(1, 2))).transpose(1, 2)
        # The reference also draws a noise-branch tensor it never uses; drawing it keeps a
        # seeded generator in step with the reference's global RNG across chunks.
        torch.randn(uv.transpose(1, 2).shape, generator=generator, device=uv.device)
        return source


class HiFTGenerator(torch.nn.Module):
    """HiFTNet generator: mel (B, 80, T) -> waveform (B, T * 256) at ``sampling_rate``.

    Args follow CosyVoice's ``HiFTGenerator``; ``f0_predictor_conf`` holds the
    ``ConvRNNF0Predictor`` arguments.
    """

    def __init__(
        self,
        in_channels: int = 80,
        base_channels: int = 512,
        nb_harmonics: int = 8,
        sampling_rate: int = 22050,
        nsf_alpha: float = 0.1,
        nsf_sigma: float = 0.003,
        nsf_voiced_threshold: float = 10,
        upsample_rates: Sequence[int] = (8, 8),
        upsample_kernel_sizes: Sequence[int] = (16, 16),
        istft_params: Optional[Dict[str, int]] = None,
        resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
        resblock_dilation_sizes: Sequence[Sequence[int]] = (
            (1, 3, 5),
            (1, 3, 5),
            (1, 3, 5),
        ),
        source_resblock_kernel_sizes: Sequence[int] = (7, 11),
        source_resblock_dilation_sizes: Sequence[Sequence[int]] = (
            (1, 3, 5),
            (1, 3, 5),
        ),
        lrelu_slope: float = 0.1,
        audio_limit: float = 0.99,
        f0_predictor_conf: Optional[Dict] = None,
    ):
        super().__init__()
        istft_params = dict(istft_params or {"n_fft": 16, "hop_len": 4})
        upsample_rates = list(upsample_rates)
        self.sampling_rate = sampling_rate
        self.n_fft = int(istft_params["n_fft"])
        self.hop_len = int(istft_params["hop_len"])
        self.lrelu_slope = lrelu_slope
        self.audio_limit = audio_limit
        self.num_kernels = len(resblock_kernel_sizes)
        self.num_upsamples = len(upsample_rates)
        self.upsample_factor = int(np.prod(upsample_rates)) * self.hop_len
        self.m_source = SourceModuleHnNSF(
            sampling_rate, nb_harmonics, nsf_alpha, nsf_sigma, nsf_voiced_threshold
        )
        self.conv_pre = weight_norm(
            torch.nn.Conv1d(in_channels, base_channels, 7, 1, padding=3)
        )
        ups = []
        for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes)):
            conv = torch.nn.ConvTranspose1d(
                base_channels // 2**i,
                base_channels // 2 ** (i + 1),
                k,
                u,
                padding=(k - u) // 2,
            )
            _init_conv(conv)
            ups.append(weight_norm(conv))
        self.ups = torch.nn.ModuleList(ups)
        self.source_downs = torch.nn.ModuleList()
        self.source_resblocks = torch.nn.ModuleList()
        down_cum = np.cumprod([1] + upsample_rates[::-1][:-1])
        for i, (u, k, d) in enumerate(
            zip(
                down_cum[::-1],
                source_resblock_kernel_sizes,
                source_resblock_dilation_sizes,
            )
        ):
            ch = base_channels // 2 ** (i + 1)
            if u == 1:
                self.source_downs.append(torch.nn.Conv1d(self.n_fft + 2, ch, 1, 1))
            else:
                u = int(u)
                self.source_downs.append(
                    torch.nn.Conv1d(self.n_fft + 2, ch, u * 2, u, padding=u // 2)
                )
            self.source_resblocks.append(ResBlock(ch, k, d))
        self.resblocks = torch.nn.ModuleList()
        for i in range(len(self.ups)):
            ch = base_channels // 2 ** (i + 1)
            for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes):
                self.resblocks.append(ResBlock(ch, k, d))
        conv_post = torch.nn.Conv1d(ch, self.n_fft + 2, 7, 1, padding=3)
        _init_conv(conv_post)
        self.conv_post = weight_norm(conv_post)
        self.reflection_pad = torch.nn.ReflectionPad1d((1, 0))
        # scipy.signal.get_window("hann", n_fft, fftbins=True) == periodic Hann
        self.register_buffer(
            "stft_window",
            torch.hann_window(self.n_fft, periodic=True, dtype=torch.float64).float(),
            persistent=False,
        )
        self.f0_predictor = ConvRNNF0Predictor(
            **(f0_predictor_conf or {"in_channels": in_channels})
        )

    @torch.no_grad()
    def set_conv_dtype(self, dtype: Optional[torch.dtype]) -> None:
        """Inference: every convolution of the decoder (not the F0 predictor's) in ``dtype``.

        ``torch.bfloat16`` on a CPU with AMX/AVX512-BF16 (or a GPU) takes about a third off
        the vocoder's time, ~80 % of which is convolutions (1.07 -> 0.72 s in
        ``benchmarks/README.md``); activations, the
        residual sums, the source and the iSTFT stay float32. Weight norms are folded.
        ``None`` leaves the module as it is. Irreversible: load the model again for float32.
        """
        if dtype is None:
            return

        def swap(parent: torch.nn.Module) -> None:
            for name, child in parent.named_children():
                if isinstance(child, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
                    setattr(parent, name, CastConv(child, dtype))
                elif child is not self.f0_predictor and not isinstance(child, CastConv):
                    swap(child)

        swap(self)

    # ---------------------------------------------------------------- pieces
    def f0_to_source(
        self,
        f0: torch.Tensor,
        generator: Optional[torch.Generator] = None,
        phase: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """(B, T) frame F0 -> (B, 1, T * upsample) excitation."""
        f0_up = F.interpolate(
            f0[:, None], scale_factor=float(self.upsample_factor), mode="nearest"
        )
        return self.m_source(f0_up, generator, phase)

    def _stft(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        spec = torch.stft(
            x,
            self.n_fft,
            self.hop_len,
            self.n_fft,
            window=self.stft_window,
            return_complex=True,
        )
        spec = torch.view_as_real(spec)
        return spec[..., 0], spec[..., 1]

    def _istft(self, magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        magnitude = torch.clip(magnitude, max=1e2)
        spec = torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))
        return torch.istft(
            spec, self.n_fft, self.hop_len, self.n_fft, window=self.stft_window
        )

    def decode(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Mel (B, 80, T) and excitation (B, 1, T * 256) -> waveform (B, T * 256)."""
        s_real, s_imag = self._stft(s.squeeze(1))
        s_stft = torch.cat([s_real, s_imag], dim=1)
        x = self.conv_pre(x)
        for i in range(self.num_upsamples):
            x = F.leaky_relu(x, self.lrelu_slope)
            x = self.ups[i](x)
            if i == self.num_upsamples - 1:
                x = self.reflection_pad(x)
            si = self.source_resblocks[i](self.source_downs[i](s_stft))
            x = x + si
            xs = None
            for j in range(self.num_kernels):
                y = self.resblocks[i * self.num_kernels + j](x)
                xs = y if xs is None else xs + y
            x = xs / self.num_kernels
        x = self.conv_post(F.leaky_relu(x))
        half = self.n_fft // 2 + 1
        x = self._istft(torch.exp(x[:, :half, :]), torch.sin(x[:, half:, :]))
        return torch.clamp(x, -self.audio_limit, self.audio_limit)

    # ---------------------------------------------------------------- API
    def forward(
        self, mel: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Training: mel -> (waveform, predicted frame F0)."""
        f0 = self.f0_predictor(mel)
        return self.decode(mel, self.f0_to_source(f0, generator)), f0

    @torch.no_grad()
    def inference(
        self,
        mel: torch.Tensor,
        cache_source: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
        source: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Mel -> (waveform, excitation used).

        Args:
            mel: (1, 80, T).
            cache_source: (1, 1, S) excitation of the previous chunk's tail; replaces the
                first S samples of this chunk's excitation (streaming).
            generator: RNG for the sine source.
            source: (1, 1, T * 256) excitation to use instead of the sine source.
        """
        if source is None:
            source = self.f0_to_source(self.f0_predictor(mel), generator)
        else:
            source = source.clone()
        if cache_source is not None and cache_source.shape[2] != 0:
            source[:, :, : cache_source.shape[2]] = cache_source
        return self.decode(mel, source), source
