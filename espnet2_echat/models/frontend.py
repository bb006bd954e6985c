"""Whisper-style log-mel features exactly as OSUM-EChat computes them (docs/data_pipeline.md#features)."""

from typing import Tuple

import librosa
import torch
from espnet2.asr.frontend.abs_frontend import AbsFrontend


class WhisperLogMel(AbsFrontend):
    """80-bin Whisper log-mel at 100 frames/s, per utterance, without 30 s padding.

    Differs from ``espnet2.asr.frontend.whisper.WhisperFrontend`` (which runs a whole
    Whisper model) and from ``whisper.log_mel_spectrogram`` in two reference details:
    the floor at (max - 8) is taken per utterance over its own frames, and each utterance
    is transformed on its own so that padding never enters the reflect padding of the STFT.
    Output length is ``floor(num_samples / hop_length)`` (the last STFT frame is dropped).
    """

    def __init__(
        self,
        fs: int = 16000,
        n_fft: int = 400,
        hop_length: int = 160,
        n_mels: int = 80,
    ):
        super().__init__()
        if fs != 16000:
            raise ValueError(f"WhisperLogMel supports fs=16000 only, got fs={fs}")
        self.fs = fs
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        mel = librosa.filters.mel(sr=fs, n_fft=n_fft, n_mels=n_mels)
        self.register_buffer("mel_filters", torch.from_numpy(mel).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def output_size(self) -> int:
        return self.n_mels

    def single(self, wav: torch.Tensor) -> torch.Tensor:
        """Features of one 1-D waveform: (T, n_mels) with T = len(wav) // hop_length."""
        stft = torch.stft(
            wav.float(),
            self.n_fft,
            self.hop_length,
            window=self.window,
            return_complex=True,
        )
        power = stft[..., :-1].abs() ** 2
        log_spec = torch.clamp(self.mel_filters @ power, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
        return ((log_spec + 4.0) / 4.0).transpose(0, 1)

    def forward(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, N) waveforms -> (B, T, n_mels) features padded with 0, and their lengths."""
        feats = [self.single(speech[i, : int(n)]) for i, n in enumerate(speech_lengths)]
        lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
        padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True, padding_value=0.0)
        return padded, lengths.to(speech.device)
