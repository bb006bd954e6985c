"""ESPnet model owning the token2wav flow, its vocoder and a stored speaker prompt."""

from typing import Dict, Iterable, Iterator, Optional, Tuple

import torch
import torchaudio
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet2_echat.models.token2wav.flow import FlowModel
from espnet2_echat.models.token2wav.griffin_lim import GriffinLimStandInVocoder
from espnet2_echat.models.token2wav.hift import HiFTGenerator
from espnet2_echat.models.token2wav.mel import MatchaMelSpectrogram
from espnet2_echat.models.token2wav.speaker_prompt import (
    SpeakerPrompt,
    standin_speaker_embedding,
)
from espnet2_echat.models.token2wav.streaming import ChunkedToken2Wav

VOCODERS = ("hift", "griffin_lim")


class ESPnetToken2WavModel(AbsESPnetModel):
    """Speech tokens -> 22.05 kHz waveform (CosyVoice-300M-25Hz layout).

    Training (``forward``) computes the flow-matching loss on (wav, tokens, x-vector);
    synthesis (``synthesize`` / ``chunked``) runs flow + vocoder with a speaker prompt,
    by default the one stored in the model's ``prompt_*`` buffers.

    Args:
        flow_conf: ``FlowModel`` arguments.
        vocoder: ``hift`` (the reference's HiFT) or ``griffin_lim`` (a stand-in, no weights).
        hift_conf: ``HiFTGenerator`` arguments.
        mel_conf: ``MatchaMelSpectrogram`` arguments (also used by the stand-in vocoder).
        speech_fs: Sampling rate of training wavs; resampled to the mel rate when different.
        prompt_num_frames: Frames of the stored prompt mel (0: no stored prompt).
        prompt_num_tokens: Tokens of the stored prompt.
    """

    def __init__(
        self,
        flow_conf: Optional[Dict] = None,
        vocoder: str = "hift",
        hift_conf: Optional[Dict] = None,
        mel_conf: Optional[Dict] = None,
        speech_fs: int = 22050,
        prompt_num_frames: int = 0,
        prompt_num_tokens: int = 0,
    ):
        super().__init__()
        if vocoder not in VOCODERS:
            raise ValueError(f"vocoder must be one of {VOCODERS}, got {vocoder!r}")
        self.flow = FlowModel(**(flow_conf or {}))
        mel_conf = dict(mel_conf or {})
        mel_conf.setdefault("sample_rate", self.flow.sample_rate)
        mel_conf.setdefault("hop_size", self.flow.hop_size)
        mel_conf.setdefault("num_mels", self.flow.output_size)
        self.mel = MatchaMelSpectrogram(**mel_conf)
        self.vocoder_type = vocoder
        if vocoder == "hift":
            self.hift = HiFTGenerator(**(hift_conf or {}))
        else:
            self.griffin_lim = GriffinLimStandInVocoder(**mel_conf)
        self.speech_fs = speech_fs
        self.sample_rate = self.flow.sample_rate
        self.register_buffer("prompt_token", torch.zeros(1, prompt_num_tokens, dtype=torch.long))
        self.register_buffer("prompt_feat", torch.zeros(1, prompt_num_frames, self.flow.output_size))
        self.register_buffer("prompt_embedding", torch.zeros(1, self.flow.spk_embed_dim))

    @property
    def vocoder(self) -> torch.nn.Module:
        """The waveform generator: HiFT, or the Griffin-Lim stand-in."""
        return self.hift if self.vocoder_type == "hift" else self.griffin_lim

    # ------------------------------------------------------------------ features
    def speech_to_mel(self, speech: torch.Tensor, fs: Optional[int] = None) -> torch.Tensor:
        """(B, N) waveform at ``fs`` (default ``speech_fs``) -> (B, T, 80) log-mel."""
        fs = fs or self.speech_fs
        if fs != self.sample_rate:
            speech = torchaudio.functional.resample(speech, fs, self.sample_rate)
        return self.mel(speech).transpose(1, 2)

    # ------------------------------------------------------------------ training
    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        speech_token: torch.Tensor,
        speech_token_lengths: torch.Tensor,
        spk_embedding: Optional[torch.Tensor] = None,
        spk_embedding_lengths: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """Flow-matching loss on a batch of (wav, speech tokens[, x-vector]).

        Without ``spk_embedding`` the stand-in embedding of each target mel is used.
        """
        feat = self.speech_to_mel(speech)
        ratio = feat.shape[1] / speech.shape[1]
        feat_lens = torch.clamp((speech_lengths.float() * ratio).long(), max=feat.shape[1])
        if spk_embedding is None:
            spk_embedding = torch.stack(
                [standin_speaker_embedding(feat[i : i + 1, : int(n)])[0] for i, n in enumerate(feat_lens)]
            )
        loss = self.flow(speech_token, speech_token_lengths, feat, feat_lens, spk_embedding.float())
        stats = {"loss": loss.detach(), "flow_loss": loss.detach()}
        loss, stats, weight = force_gatherable((loss, stats, speech.shape[0]), loss.device)
        return loss, stats, weight

    def collect_feats(self, speech: torch.Tensor, speech_lengths: torch.Tensor, **kwargs) -> Dict[str, torch.Tensor]:
        """Log-mel features (for ESPnet's statistics stage)."""
        return {"feats": self.speech_to_mel(speech), "feats_lengths": speech_lengths // self.flow.hop_size}

    # ------------------------------------------------------------------ prompt
    def stored_prompt(self) -> SpeakerPrompt:
        """The prompt saved with the model; raises if none was stored."""
        if not bool(self.prompt_embedding.abs().sum() > 0):
            raise ValueError(
                "this token2wav model has no stored speaker prompt; pass one "
                "(see espnet2_echat.models.token2wav.speaker_prompt.SpeakerPrompt)"
            )
        return SpeakerPrompt(self.prompt_token, self.prompt_feat, self.prompt_embedding)

    def store_prompt(self, prompt: SpeakerPrompt) -> None:
        """Replace the stored prompt (buffers are resized; save the config accordingly)."""
        prompt.check(self.flow.vocab_size, self.flow.output_size, self.flow.spk_embed_dim)
        self.prompt_token = prompt.prompt_token.long().clone()
        self.prompt_feat = prompt.prompt_feat.float().clone()
        self.prompt_embedding = prompt.embedding.float().clone()

    def prompt_from_wav(
        self,
        wav: torch.Tensor,
        fs: int,
        prompt_token: Optional[torch.Tensor] = None,
        embedding: Optional[torch.Tensor] = None,
    ) -> SpeakerPrompt:
        """Build a prompt from a (N,) or (1, N) wav; fails on a non-``sample_rate`` wav.

        Missing ``prompt_token`` means an empty token prompt; missing ``embedding`` means
        the documented stand-in embedding.
        """
        if fs != self.sample_rate:
            raise ValueError(
                f"prompt wav must be sampled at {self.sample_rate} Hz (got {fs} Hz); "
                "resample it first"
            )
        wav = wav.reshape(1, -1).float()
        feat = self.mel(wav).transpose(1, 2)
        if prompt_token is None:
            prompt_token = torch.zeros(1, 0, dtype=torch.long)
        if embedding is None:
            embedding = standin_speaker_embedding(feat, self.flow.spk_embed_dim)
        prompt = SpeakerPrompt(prompt_token.reshape(1, -1).long(), feat, embedding.reshape(1, -1).float())
        prompt.check(self.flow.vocab_size, self.flow.output_size, self.flow.spk_embed_dim)
        return prompt

    # ------------------------------------------------------------------ synthesis
    def check_tokens(self, token) -> torch.Tensor:
        """Validate speech tokens and return them as a (1, N) int64 tensor."""
        token = torch.as_tensor(token, dtype=torch.long).reshape(1, -1)
        if token.shape[1] == 0:
            raise ValueError("token2wav got an empty speech-token list")
        lo, hi = int(token.min()), int(token.max())
        if lo < 0 or hi >= self.flow.vocab_size:
            raise ValueError(
                f"speech token ids must lie in [0, {self.flow.vocab_size - 1}], got min {lo} max {hi}"
            )
        return token

    @torch.no_grad()
    def synthesize(
        self,
        token,
        prompt: Optional[SpeakerPrompt] = None,
        n_timesteps: int = 10,
        generator: Optional[torch.Generator] = None,
        noise: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Offline synthesis: tokens -> (1, S) waveform at ``sample_rate``."""
        token = self.check_tokens(token).to(self.prompt_feat.device)
        prompt = prompt or self.stored_prompt()
        prompt.check(self.flow.vocab_size, self.flow.output_size, self.flow.spk_embed_dim)
        mel = self.flow.inference(
            token, prompt.prompt_token, prompt.prompt_feat, prompt.embedding,
            noise=noise, generator=generator, n_timesteps=n_timesteps,
        )
        return self.vocoder.inference(mel, generator=generator)[0]

    def chunked(self, reference_compat: bool = False, n_timesteps: int = 10, **kwargs) -> ChunkedToken2Wav:
        """A chunked (streaming) synthesiser bound to this model's flow and vocoder."""
        return ChunkedToken2Wav(
            self.flow, self.vocoder, reference_compat=reference_compat, n_timesteps=n_timesteps, **kwargs
        )

    def synthesize_stream(
        self,
        token_pieces: Iterable[Iterable[int]],
        prompt: Optional[SpeakerPrompt] = None,
        n_timesteps: int = 10,
        generator: Optional[torch.Generator] = None,
        reference_compat: bool = False,
    ) -> Iterator[torch.Tensor]:
        """Streaming synthesis: yields (1, S) speech chunks as tokens arrive."""
        prompt = prompt or self.stored_prompt()
        prompt.check(self.flow.vocab_size, self.flow.output_size, self.flow.spk_embed_dim)

        def checked() -> Iterator[list]:
            for piece in token_pieces:
                piece = list(piece)
                if piece:
                    self.check_tokens(piece)
                yield piece

        yield from self.chunked(reference_compat, n_timesteps).stream_incremental(
            checked(), prompt.prompt_token, prompt.prompt_feat, prompt.embedding, generator
        )
