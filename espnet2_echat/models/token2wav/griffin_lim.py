"""A signal-processing STAND-IN vocoder: Griffin-Lim phase reconstruction of the log-mel.

Used by the default tiny recipe where no trained HiFT exists. It is not the reference's
vocoder and sounds metallic; it only makes every stage audible without a trained model.
"""

from typing import Optional, Tuple

import librosa
import torch
import torchaudio


class GriffinLimStandInVocoder(torch.nn.Module):
    """Log-mel (Matcha front-end) -> waveform by mel pseudo-inverse + torchaudio Griffin-Lim.

    Args:
        sample_rate: Output rate.
        n_fft: FFT size of the mel front-end.
        num_mels: Mel bins.
        hop_size: Hop length.
        win_size: Window length.
        fmin: Lowest mel frequency.
        fmax: Highest mel frequency.
        n_iter: Griffin-Lim iterations.
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
        n_iter: int = 32,
    ):
        super().__init__()
        self.sampling_rate = sample_rate
        self.hop_size = hop_size
        mel = torch.from_numpy(
            librosa.filters.mel(
                sr=sample_rate, n_fft=n_fft, n_mels=num_mels, fmin=fmin, fmax=fmax
            )
        ).float()
        self.register_buffer("inverse_mel", torch.linalg.pinv(mel), persistent=False)
        self.griffin_lim = torchaudio.transforms.GriffinLim(
            n_fft=n_fft,
            win_length=win_size,
            hop_length=hop_size,
            power=1.0,
            n_iter=n_iter,
            rand_init=False,  # deterministic: same mel, same audio
        )

    @torch.no_grad()
    def inference(
        self,
        mel: torch.Tensor,
        cache_source: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, 80, T) log-mel -> ((B, T * hop) waveform, empty source)."""
        magnitude = torch.clamp(self.inverse_mel @ torch.exp(mel), min=0.0)
        # Griffin-Lim's STFT reflect-pads n_fft / 2 samples, so its inverse must be longer than
        # that: a reply of a few speech tokens gets silent frames appended, cut off below
        min_frames = self.griffin_lim.n_fft // self.hop_size + 2
        magnitude = torch.nn.functional.pad(magnitude, (0, max(0, min_frames - mel.shape[2])))
        wav = self.griffin_lim(magnitude)
        n = mel.shape[2] * self.hop_size
        wav = torch.nn.functional.pad(wav, (0, max(0, n - wav.shape[-1])))[..., :n]
        return torch.clamp(wav, -0.99, 0.99), mel.new_zeros(mel.shape[0], 1, 0)
