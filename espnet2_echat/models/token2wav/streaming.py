"""Chunked (streaming) token2wav with the CosyVoice-300M caches.

The chunk loop follows ``cosyvoice.cli.model.CosyVoiceModel.token2wav`` / ``vc``: chunks
of ``hop + overlap`` tokens (hop = 2 * token rate, overlap = 20), a flow cache of the
prompt and trailing frames of [noise, mu], a Hamming cross-fade of ``overlap`` tokens'
worth of mel, and a HiFT cache (20 mel frames, 20 * 256 excitation and speech samples)
with a Hamming cross-fade of the speech.

Reference bug (fixed by default): the reference keeps the last 34 frames in the flow cache,
the overlap of 20 tokens at 50 Hz. At 25 Hz those 20 tokens span 68 frames, so the first
34 frames of chunk k+1 receive the noise and ``mu`` of chunk k's frames of tokens ~60-69
instead of ~50-59. ``reference_compat=True`` keeps 34 frames (bit-compatible with the
released model's behaviour); the default keeps ``mel_overlap_len`` frames, which lines up
with the next chunk's head at any token rate.
"""

from dataclasses import dataclass, field
from typing import Iterable, Iterator, List, Optional

import numpy as np
import torch

REFERENCE_FLOW_CACHE_FRAMES = 34


def fade_in_out(
    fade_in: torch.Tensor, fade_out: torch.Tensor, window: torch.Tensor
) -> torch.Tensor:
    """Cross-fade the start of ``fade_in`` with the end of ``fade_out`` (float64 window)."""
    n = window.shape[0] // 2
    window = window.to(fade_in.device)
    out = fade_in.clone()
    mixed = (
        fade_in[..., :n].double() * window[:n]
        + fade_out[..., -n:].double() * window[n:]
    )
    out[..., :n] = mixed.to(out.dtype)
    return out


@dataclass
class _HiftCache:
    mel: torch.Tensor
    source: torch.Tensor
    speech: torch.Tensor


@dataclass
class StreamingState:
    """Per-utterance caches carried from one chunk to the next."""

    flow_cache: torch.Tensor
    mel_overlap: torch.Tensor
    hift_cache: Optional[_HiftCache] = None
    trace: List[dict] = field(default_factory=list)


class ChunkedToken2Wav:
    """Chunk-by-chunk synthesis driver around a flow model and a vocoder.

    Args:
        flow: ``FlowModel``.
        vocoder: ``HiFTGenerator`` or a stand-in with the same ``inference`` signature.
        token_hop_len: Tokens a chunk advances (default 2 * token rate).
        token_overlap_len: Tokens shared with the next chunk (20).
        mel_cache_len: Mel frames of HiFT context carried over (20).
        reference_compat: Keep the reference's 34-frame flow cache (see module doc).
        n_timesteps: Euler steps per chunk.
        first_token_hop_len: Tokens the first chunk advances (default ``token_hop_len``,
            as the reference). A short first chunk (e.g. 10 tokens: 30 with the overlap)
            makes the first audio come after 30 instead of 70 tokens and a third of the
            flow work; later chunks are the usual ``hop + overlap``.
    """

    def __init__(
        self,
        flow: torch.nn.Module,
        vocoder: torch.nn.Module,
        token_hop_len: Optional[int] = None,
        token_overlap_len: int = 20,
        mel_cache_len: int = 20,
        reference_compat: bool = False,
        n_timesteps: int = 10,
        first_token_hop_len: Optional[int] = None,
    ):
        self.flow = flow
        self.vocoder = vocoder
        self.token_hop_len = token_hop_len or 2 * flow.input_frame_rate
        self.first_token_hop_len = first_token_hop_len or self.token_hop_len
        self.token_overlap_len = token_overlap_len
        self.mel_overlap_len = flow.num_mel_frames(token_overlap_len)
        self.mel_cache_len = mel_cache_len
        for name, hop in (
            ("token_hop_len", self.token_hop_len),
            ("first_token_hop_len", self.first_token_hop_len),
        ):
            frames = flow.num_mel_frames(hop + token_overlap_len) - self.mel_overlap_len
            if frames <= mel_cache_len:
                raise ValueError(
                    f"{name}={hop} leaves {frames} mel frames a chunk, not more than the "
                    f"vocoder's {mel_cache_len}-frame cache: use a longer hop"
                )
        self.source_cache_len = mel_cache_len * flow.hop_size
        self.flow_cache_frames = (
            REFERENCE_FLOW_CACHE_FRAMES if reference_compat else self.mel_overlap_len
        )
        self.n_timesteps = n_timesteps
        self.mel_window = torch.from_numpy(np.hamming(2 * self.mel_overlap_len))
        self.speech_window = torch.from_numpy(np.hamming(2 * self.source_cache_len))

    def new_state(self) -> StreamingState:
        """Fresh caches for a new utterance."""
        n_mels = self.flow.output_size
        return StreamingState(
            flow_cache=torch.zeros(1, n_mels, 0, 2),
            mel_overlap=torch.zeros(1, n_mels, 0),
        )

    @torch.no_grad()
    def chunk(
        self,
        state: StreamingState,
        token: torch.Tensor,
        prompt_token: torch.Tensor,
        prompt_feat: torch.Tensor,
        embedding: torch.Tensor,
        finalize: bool,
        generator: Optional[torch.Generator] = None,
        noise: Optional[torch.Tensor] = None,
        keep_trace: bool = False,
    ) -> torch.Tensor:
        """Synthesise one chunk of tokens; returns the (1, S) speech to play now.

        ``noise`` replaces the raw flow draw of this chunk (before the cache overwrite).
        """
        c = self.flow.conditions(token, prompt_token, prompt_feat, embedding)
        z = self.flow.draw_noise(c.mu, noise, generator)
        mu_before = c.mu
        z, mu, state.flow_cache = self.flow.decoder.apply_cache(
            z, c.mu, state.flow_cache.to(z), c.mel_len1, self.flow_cache_frames
        )
        mel = self.flow.decoder.solve_euler(
            z, mu, c.mask, c.spks, c.cond, self.n_timesteps
        )
        mel = mel[:, :, c.mel_len1 :]
        flow_mel = mel
        if state.mel_overlap.shape[2] != 0:
            mel = fade_in_out(mel, state.mel_overlap.to(mel), self.mel_window)
        if state.hift_cache is not None:
            mel = torch.cat([state.hift_cache.mel, mel], dim=2)
            cache_source = state.hift_cache.source
        else:
            cache_source = mel.new_zeros(1, 1, 0)
        if not finalize:
            state.mel_overlap = mel[:, :, -self.mel_overlap_len :]
            mel = mel[:, :, : -self.mel_overlap_len]
        speech, source = self.vocoder.inference(
            mel, cache_source=cache_source, generator=generator
        )
        if state.hift_cache is not None:
            speech = fade_in_out(speech, state.hift_cache.speech, self.speech_window)
        if not finalize:
            state.hift_cache = _HiftCache(
                mel=mel[:, :, -self.mel_cache_len :],
                source=source[:, :, -self.source_cache_len :],
                speech=speech[:, -self.source_cache_len :],
            )
            speech = speech[:, : -self.source_cache_len]
        if keep_trace:
            state.trace.append(
                {
                    "mu_before_cache": mu_before,
                    "noise_z_used": z,
                    "flow_mel": flow_mel,
                    "hift_in_mel": mel,
                    "flow_cache_out": state.flow_cache,
                    "speech_out": speech,
                }
            )
        return speech

    def split(self, num_tokens: int) -> List[slice]:
        """Token slices of the reference's chunk loop for an utterance of ``num_tokens``."""
        slices, start, hop = [], 0, self.first_token_hop_len
        while num_tokens - start >= hop + self.token_overlap_len:
            slices.append(slice(start, start + hop + self.token_overlap_len))
            start += hop
            hop = self.token_hop_len
        slices.append(slice(start, num_tokens))
        return slices

    def stream(
        self,
        token: torch.Tensor,
        prompt_token: torch.Tensor,
        prompt_feat: torch.Tensor,
        embedding: torch.Tensor,
        generator: Optional[torch.Generator] = None,
        state: Optional[StreamingState] = None,
    ) -> Iterator[torch.Tensor]:
        """Yield speech chunks for a complete (1, N) token sequence."""
        state = state or self.new_state()
        slices = self.split(token.shape[1])
        for i, sl in enumerate(slices):
            yield self.chunk(
                state,
                token[:, sl],
                prompt_token,
                prompt_feat,
                embedding,
                finalize=i == len(slices) - 1,
                generator=generator,
            )

    def stream_incremental(
        self,
        token_pieces: Iterable[Iterable[int]],
        prompt_token: torch.Tensor,
        prompt_feat: torch.Tensor,
        embedding: torch.Tensor,
        generator: Optional[torch.Generator] = None,
    ) -> Iterator[torch.Tensor]:
        """Yield speech as soon as ``hop + overlap`` tokens exist, for tokens arriving in pieces."""
        state, buffer, hop = self.new_state(), [], self.first_token_hop_len
        for piece in token_pieces:
            buffer.extend(int(t) for t in piece)
            while len(buffer) >= hop + self.token_overlap_len:
                yield self.chunk(
                    state,
                    torch.tensor(
                        [buffer[: hop + self.token_overlap_len]],
                        device=prompt_feat.device,
                    ),
                    prompt_token,
                    prompt_feat,
                    embedding,
                    finalize=False,
                    generator=generator,
                )
                buffer, hop = buffer[hop:], self.token_hop_len
        if not buffer:
            raise ValueError("streaming token2wav got no speech tokens")
        yield self.chunk(
            state,
            torch.tensor([buffer], device=prompt_feat.device),
            prompt_token,
            prompt_feat,
            embedding,
            finalize=True,
            generator=generator,
        )
