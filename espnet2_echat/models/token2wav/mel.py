"""Matcha-TTS / CosyVoice mel front-end (80 bins at 22.05 kHz).

torchaudio's ``MelSpectrogram`` differs from the reference in two places that change the
numbers (the ``+1e-9`` inside the magnitude square root and the reflect pre-padding with
``center=False``), so the transform is written out here with ``torch.stft`` and the
librosa mel basis, exactly as ``matcha.utils.audio.mel_spectrogram`` computes it.
"""

from typing import Optional

import librosa
import torch


class MatchaMelSpectrogram(torch.nn.Module):
    """Log-mel spectrogram as CosyVoice computes its prompt and training features.

    Args:
        sample_rate: Sampling rate of the input waveform.
        n_fft: FFT size.
        num_mels: Number of mel bins.
        hop_size: Hop length in samples.
        win_size: Window length in samples.
        fmin: Lowest mel frequency.
        fmax: Highest mel frequency (None: Nyquist).
    """

    def __init__(
        self,
        sample_rate: int = 22050,
        n_fft: int = 1024,
        num_mels: int = 80,
        hop_size: int = 256,
        win_size: int = 1024,
        fmin: float = 0.0,
        fmax: Optional[float] = 8000.0,
    ):
        super().__init__()
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.num_mels = num_mels
        self.hop_size = hop_size
        self.win_size = win_size
        mel = librosa.filters.mel(
            sr=sample_rate, n_fft=n_fft, n_mels=num_mels, fmin=fmin, fmax=fmax
        )
        self.register_buffer(
            "mel_basis", torch.from_numpy(mel).float(), persistent=False
        )
        self.register_buffer("window", torch.hann_window(win_size), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Compute the log-mel spectrogram.

        Args:
            wav: (B, N) waveform in [-1, 1].

        Returns:
            (B, num_mels, N // hop_size) log-mel.
        """
        if wav.dim() != 2:
            raise ValueError(
                f"expected a (batch, samples) waveform, got shape {tuple(wav.shape)}"
            )
        pad = int((self.n_fft - self.hop_size) / 2)
        wav = torch.nn.functional.pad(
            wav.unsqueeze(1), (pad, pad), mode="reflect"
        ).squeeze(1)
        spec = torch.stft(
            wav,
            self.n_fft,
            hop_length=self.hop_size,
            win_length=self.win_size,
            window=self.window,
            center=False,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        spec = torch.view_as_real(spec)
        spec = torch.sqrt(spec.pow(2).sum(-1) + 1e-9)
        spec = torch.matmul(self.mel_basis, spec)
        return torch.log(torch.clamp(spec, min=1e-5))
