"""ESPnet model owning the token2wav flow, its vocoder and a stored speaker prompt."""

from typing import Dict, Iterable, Iterator, Optional

import torch
import torchaudio
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet2_echat.models.token2wav.flow import FlowModel
from espnet2_echat.models.token2wav.griffin_lim import GriffinLimStandInVocoder
from espnet2_echat.models.token2wav.hift import HiFTGenerator
from espnet2_echat.models.token2wav.hift_gan import HiFTGANLoss
from espnet2_echat.models.token2wav.mel import MatchaMelSpectrogram
from espnet2_echat.models.token2wav.speaker_prompt import (
    SpeakerPrompt,
    standin_speaker_embedding,
)
from espnet2_echat.models.token2wav.streaming import ChunkedToken2Wav

VOCODERS = ("hift", "griffin_lim")
TRAIN_PARTS = ("flow", "hift", "both")


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
        train_part: What ``forward`` trains: ``flow`` (CFM loss, ESPnet ``Trainer``),
            ``hift`` (the vocoder with CosyVoice's GAN losses, ``GANTrainer``) or
            ``both`` (flow loss added to the generator turn).
        gan_conf: ``HiFTGANLoss`` arguments (``train_part`` hift/both).
        segment_frames: Random mel segment length for vocoder training.
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
        train_part: str = "flow",
        gan_conf: Optional[Dict] = None,
        segment_frames: int = 32,
    ):
        super().__init__()
        if vocoder not in VOCODERS:
            raise ValueError(f"vocoder must be one of {VOCODERS}, got {vocoder!r}")
        if train_part not in TRAIN_PARTS:
            raise ValueError(
                f"train_part must be one of {TRAIN_PARTS}, got {train_part!r}"
            )
        if train_part != "flow" and vocoder != "hift":
            raise ValueError(
                f"train_part={train_part!r} trains HiFT: set vocoder: hift"
            )
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
        self.train_part = train_part
        self.segment_frames = segment_frames
        if train_part != "flow":
            gan_conf = dict(gan_conf or {})
            gan_conf.setdefault("mel_conf", mel_conf)
            self.gan_loss = HiFTGANLoss(**gan_conf)
        self.register_buffer(
            "prompt_token", torch.zeros(1, prompt_num_tokens, dtype=torch.long)
        )
        self.register_buffer(
            "prompt_feat", torch.zeros(1, prompt_num_frames, self.flow.output_size)
        )
        self.register_buffer(
            "prompt_embedding", torch.zeros(1, self.flow.spk_embed_dim)
        )

    @property
    def vocoder(self) -> torch.nn.Module:
        """The waveform generator: HiFT, or the Griffin-Lim stand-in."""
        return self.hift if self.vocoder_type == "hift" else self.griffin_lim

    # ------------------------------------------------------------------ features
    def speech_to_mel(
        self, speech: torch.Tensor, fs: Optional[int] = None
    ) -> torch.Tensor:
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
        speech_token: Optional[torch.Tensor] = None,
        speech_token_lengths: Optional[torch.Tensor] = None,
        spk_embedding: Optional[torch.Tensor] = None,
        spk_embedding_lengths: Optional[torch.Tensor] = None,
        pitch: Optional[torch.Tensor] = None,
        pitch_lengths: Optional[torch.Tensor] = None,
        forward_generator: bool = True,
        **kwargs,
    ):
        """Training losses.

        ``train_part: flow``: returns ``(loss, stats, weight)`` (ESPnet ``Trainer``).
        ``hift`` / ``both``: returns the ``GANTrainer`` dict of the generator turn
        (``forward_generator``) or of the discriminator turn.

        Without ``spk_embedding`` the stand-in embedding of each target mel is used;
        ``pitch`` is an optional frame-level F0 target (Hz, at the mel rate) for HiFT.
        """
        feat = self.speech_to_mel(speech)
        feat_lens = self._feat_lengths(feat, speech, speech_lengths)
        batch = speech.shape[0]
        if self.train_part == "flow":
            loss = self._flow_loss(
                feat, feat_lens, speech_token, speech_token_lengths, spk_embedding
            )
            stats = {"loss": loss.detach(), "flow_loss": loss.detach()}
            return force_gatherable((loss, stats, batch), loss.device)
        if self.train_part == "both" and forward_generator:
            flow_loss = self._flow_loss(
                feat, feat_lens, speech_token, speech_token_lengths, spk_embedding
            )
        wav = (
            speech
            if self.speech_fs == self.sample_rate
            else torchaudio.functional.resample(
                speech, self.speech_fs, self.sample_rate
            )
        )
        mel, real, f0_target = self._random_segments(feat, feat_lens, wav, pitch)
        if forward_generator:
            fake, f0 = self.hift(mel.transpose(1, 2))
            losses = self.gan_loss.generator_loss(real, fake, f0, f0_target)
            if self.train_part == "both":
                losses["flow_loss"] = flow_loss
                losses["loss"] = losses["loss"] + flow_loss
            prefix, optim_idx = "generator_", 0
        else:
            with torch.no_grad():
                fake, _ = self.hift(mel.transpose(1, 2))
            losses = self.gan_loss.discriminator_loss(real, fake)
            prefix, optim_idx = "discriminator_", 1
        stats = {prefix + k: v.detach() for k, v in losses.items()}
        loss, stats, weight = force_gatherable(
            (losses["loss"], stats, batch), speech.device
        )
        return {"loss": loss, "stats": stats, "weight": weight, "optim_idx": optim_idx}

    def _flow_loss(
        self, feat, feat_lens, speech_token, speech_token_lengths, spk_embedding
    ) -> torch.Tensor:
        if speech_token is None:
            raise ValueError(
                "training the flow needs the 'speech_token' data (uttid id id ...)"
            )
        if int(speech_token.max()) >= self.flow.vocab_size:
            raise ValueError(
                f"speech token id {int(speech_token.max())} in this batch is outside the "
                f"flow's vocabulary [0, {self.flow.vocab_size - 1}]"
            )
        if (
            spk_embedding is not None
            and spk_embedding.shape[-1] != self.flow.spk_embed_dim
        ):
            raise ValueError(
                f"spk_embedding must be {self.flow.spk_embed_dim}-d, "
                f"got {spk_embedding.shape[-1]}"
            )
        if spk_embedding is None:
            spk_embedding = torch.stack(
                [
                    standin_speaker_embedding(feat[i : i + 1, : int(n)])[0]
                    for i, n in enumerate(feat_lens)
                ]
            )
        return self.flow(
            speech_token, speech_token_lengths, feat, feat_lens, spk_embedding.float()
        )

    def _random_segments(self, feat, feat_lens, wav, pitch):
        """Cut one random ``segment_frames`` window per utterance: (mel, wav, F0 target)."""
        seg, hop = self.segment_frames, self.flow.hop_size
        if feat.shape[1] < seg:
            feat = torch.nn.functional.pad(feat, (0, 0, 0, seg - feat.shape[1]))
        need = feat.shape[1] * hop
        if wav.shape[1] < need:
            wav = torch.nn.functional.pad(wav, (0, need - wav.shape[1]))
        mels, wavs, f0s = [], [], []
        for i, n in enumerate(feat_lens.tolist()):
            start = int(torch.randint(0, max(1, n - seg + 1), (1,)))
            mels.append(feat[i, start : start + seg])
            wavs.append(wav[i, start * hop : (start + seg) * hop])
            if pitch is not None:
                f0s.append(
                    torch.nn.functional.pad(
                        pitch[i, start : start + seg],
                        (0, max(0, seg - pitch[i, start:].shape[0])),
                    )
                )
        f0_target = torch.stack(f0s).float() if pitch is not None else None
        return torch.stack(mels), torch.stack(wavs), f0_target

    def collect_feats(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, **kwargs
    ) -> Dict[str, torch.Tensor]:
        """Log-mel features (for ESPnet's statistics stage)."""
        feats = self.speech_to_mel(speech)
        return {
            "feats": feats,
            "feats_lengths": self._feat_lengths(feats, speech, speech_lengths),
        }

    @staticmethod
    def _feat_lengths(
        feats: torch.Tensor, speech: torch.Tensor, speech_lengths: torch.Tensor
    ) -> torch.Tensor:
        """Mel frames of each padded utterance (the batch's frame/sample ratio)."""
        ratio = feats.shape[1] / speech.shape[1]
        return torch.clamp((speech_lengths.float() * ratio).long(), max=feats.shape[1])

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
        prompt.check(
            self.flow.vocab_size, self.flow.output_size, self.flow.spk_embed_dim
        )
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

        Missing ``prompt_token`` means a prompt of the x-vector only (the flow uses the
        prompt mel only together with its tokens); missing ``embedding`` means the
        documented stand-in embedding (computed from the mel).
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
        prompt_token = prompt_token.reshape(1, -1).long()
        if prompt_token.shape[1] == 0:
            feat = feat[:, :0]
        prompt = SpeakerPrompt(prompt_token, feat, embedding.reshape(1, -1).float())
        prompt.check(
            self.flow.vocab_size, self.flow.output_size, self.flow.spk_embed_dim
        )
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
        prompt.check(
            self.flow.vocab_size, self.flow.output_size, self.flow.spk_embed_dim
        )
        mel = self.flow.inference(
            token,
            prompt.prompt_token,
            prompt.prompt_feat,
            prompt.embedding,
            noise=noise,
            generator=generator,
            n_timesteps=n_timesteps,
        )
        return self.vocoder.inference(mel, generator=generator)[0]

    def chunked(
        self, reference_compat: bool = False, n_timesteps: int = 10, **kwargs
    ) -> ChunkedToken2Wav:
        """A chunked (streaming) synthesiser bound to this model's flow and vocoder."""
        return ChunkedToken2Wav(
            self.flow,
            self.vocoder,
            reference_compat=reference_compat,
            n_timesteps=n_timesteps,
            **kwargs,
        )

    def synthesize_stream(
        self,
        token_pieces: Iterable[Iterable[int]],
        prompt: Optional[SpeakerPrompt] = None,
        n_timesteps: int = 10,
        generator: Optional[torch.Generator] = None,
        reference_compat: bool = False,
        first_token_hop_len: Optional[int] = None,
    ) -> Iterator[torch.Tensor]:
        """Streaming synthesis: yields (1, S) speech chunks as tokens arrive (the first
        after ``first_token_hop_len`` + 20 tokens; default the reference's 50 + 20)."""
        prompt = prompt or self.stored_prompt()
        prompt.check(
            self.flow.vocab_size, self.flow.output_size, self.flow.spk_embed_dim
        )

        def checked() -> Iterator[list]:
            for piece in token_pieces:
                piece = list(piece)
                if piece:
                    self.check_tokens(piece)
                yield piece

        chunked = self.chunked(
            reference_compat, n_timesteps, first_token_hop_len=first_token_hop_len
        )
        yield from chunked.stream_incremental(
            checked(),
            prompt.prompt_token,
            prompt.prompt_feat,
            prompt.embedding,
            generator,
        )
