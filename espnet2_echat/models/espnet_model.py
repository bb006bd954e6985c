"""The OSUM-EChat speech LLM as an ESPnet model: returns (loss, stats, weight) (docs/model.md#loss)."""

import logging
from contextlib import nullcontext
from typing import Dict, List, Optional, Tuple, Union

import torch
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel
from torch import nn

from espnet2_echat.data.templates import AUDIO_PLACEHOLDER, IGNORE_ID
from espnet2_echat.models.compute_dtype import autocast_dtype, float32_attention
from espnet2_echat.models.frozen_prefix import (
    FrozenPrefixCache,
    frozen_prefix_blocker,
    frozen_prefix_length,
    hidden_after_frozen_prefix,
)
from espnet2_echat.models.splice import PackedBatch, pack, splice_sample, unpad
from espnet2_echat.models.speech_llm import SpeechLLM


class EChatModel(AbsESPnetModel):
    """Whisper-style encoder + adapter feeding a causal LM that answers in text and speech.

    Batch keys (from ``espnet2_echat.data.preprocessor``): ``speech`` (16 kHz waveform),
    ``input_ids`` (unified ids with one ``AUDIO_PLACEHOLDER`` where the user's audio goes,
    none for text-input tasks) and ``target`` (same length; ``IGNORE_ID`` where unsupervised,
    otherwise the id the model must emit at that position). Multi-turn samples also have a
    placeholder per past user turn with audio, before their own; that audio comes as
    ``history_speech`` (the turns' waveforms concatenated) and ``history_speech_splits``
    (their lengths in samples); see :func:`split_history`.

    The loss is the reference's: next-token cross-entropy, mean over supervised positions,
    over ``lm_head ⊕ speech_head`` for samples with speech targets and over ``lm_head`` only
    for text-only samples. Logits are computed on supervised rows only. The returned
    ``weight`` is the number of supervised positions (the loss's normaliser), so that ESPnet's
    weighted average over DDP ranks gives the same loss and gradient as one process.

    With ``reuse_frozen_prefix`` and a frozen LLM, each sample's leading text ids (system
    prompt, instruction) go through the LLM once per distinct prefix, not at every step
    (``espnet2_echat.models.frozen_prefix``; same loss and gradients up to round-off).

    ``llm_compute_dtype="bfloat16"`` runs the LLM body's products under
    ``torch.autocast`` in bfloat16 (weights stay float32; the heads and the loss stay
    float32); ``"auto"`` does so where the device multiplies bfloat16 natively
    (``espnet2_echat.models.compute_dtype``). On a CPU with AMX that is several times faster
    than float32 (``benchmarks/small_real_step.py``); the numbers change at bfloat16 precision.
    """

    def __init__(
        self,
        frontend: AbsFrontend,
        encoder: nn.Module,
        adapter: nn.Module,
        llm: SpeechLLM,
        reuse_frozen_prefix: bool = True,
        llm_compute_dtype: str = "float32",
        label_heads: Optional[nn.Module] = None,
        label_aux_weight: float = 0.0,
    ):
        super().__init__()
        self.frontend = frontend
        self.encoder = encoder
        self.adapter = adapter
        self.llm = llm
        self.reuse_frozen_prefix = reuse_frozen_prefix
        autocast_dtype(llm_compute_dtype, "cpu")  # refuses an unknown name now
        self.llm_compute_dtype = llm_compute_dtype
        self.prefix_cache = FrozenPrefixCache()
        # auxiliary per-utterance label loss (models.label_heads), off in the reference
        self.label_heads = label_heads
        self.label_aux_weight = label_aux_weight
        self._prefix_blocker_reported: Optional[str] = None

    def encode_speech(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Waveforms -> LLM-width audio embeddings at 12.5 Hz, and their lengths."""
        feats, feats_lengths = self.frontend(speech, speech_lengths)
        return self.encode_feats(feats, feats_lengths)

    def encode_feats(
        self, feats: torch.Tensor, feats_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Log-mel features (B, T, 80) -> audio embeddings (B, T/8, H) and lengths."""
        dtype = next(self.encoder.parameters()).dtype
        enc, enc_lengths = self.encoder(feats.to(dtype), feats_lengths)
        return self.adapter(enc, enc_lengths)

    def audio_per_sample(
        self,
        input_ids: List[torch.Tensor],
        speech: Optional[torch.Tensor],
        speech_lengths: Optional[torch.Tensor],
        history: Optional[List[List[torch.Tensor]]] = None,
        speech_enc: Optional[torch.Tensor] = None,
        speech_enc_lengths: Optional[torch.Tensor] = None,
    ) -> List[Union[None, torch.Tensor, List[torch.Tensor]]]:
        """Encode the audio of every sample's placeholders, in one encoder call for the batch.

        ``history[i]`` lists the waveforms of sample i's past user turns (multi-turn
        samples), which take its first placeholders; its own speech takes the last one if
        it has one more placeholder. ``speech_enc`` (B, T, D): the frozen encoder's outputs
        computed beforehand (``train.encoder_cache``), which go to the adapter directly
        (single-turn samples). Returns per sample None (no placeholder), the encoded
        speech (a single-turn sample) or the list of encoded segments in placeholder order.
        """
        counts = [int((ids == AUDIO_PLACEHOLDER).sum()) for ids in input_ids]
        history = history or [[] for _ in input_ids]
        audio: List[Union[None, torch.Tensor, List[torch.Tensor]]] = [None] * len(input_ids)
        if speech_enc is not None and any(history):
            raise ValueError("cached encoder outputs (speech_enc) serve single-turn samples only")
        if not any(history):
            index = [i for i, n in enumerate(counts) if n]
            if index and speech_enc is not None:
                sel = torch.tensor(index, device=speech_enc.device)
                dtype = next(self.adapter.parameters()).dtype
                emb, lengths = self.adapter(speech_enc[sel].to(dtype), speech_enc_lengths[sel])
            elif index:
                if speech is None:
                    raise ValueError("input_ids hold an audio placeholder but no speech was given")
                sel = torch.tensor(index, device=speech.device)
                emb, lengths = self.encode_speech(speech[sel], speech_lengths[sel])
            if index:
                for i, e in zip(index, unpad(emb, lengths)):
                    audio[i] = e
            return audio
        wavs, owners = [], []
        for i, (n, past) in enumerate(zip(counts, history)):
            if n - len(past) not in (0, 1):
                raise ValueError(
                    f"sample {i} holds {n} audio placeholders for {len(past)} history audio(s)"
                )
            segments = list(past)
            if n > len(past):
                if speech is None:
                    raise ValueError("input_ids hold an audio placeholder but no speech was given")
                segments.append(speech[i, : int(speech_lengths[i])])
            wavs += segments
            owners += [i] * len(segments)
            audio[i] = [] if segments else None
        lengths = torch.tensor([w.shape[0] for w in wavs], device=wavs[0].device)
        padded = nn.utils.rnn.pad_sequence(wavs, batch_first=True)
        emb, emb_lengths = self.encode_speech(padded, lengths)
        for i, e in zip(owners, unpad(emb, emb_lengths)):
            audio[i].append(e)
        return audio

    def build_inputs(
        self,
        input_ids: List[torch.Tensor],
        audio: List[Union[None, torch.Tensor, List[torch.Tensor]]],
        target: Optional[List[torch.Tensor]] = None,
        padding_side: str = "right",
    ) -> PackedBatch:
        """Splice audio into each sample and pack the batch."""
        embeds, targets = self.splice(input_ids, audio, target)
        return pack(embeds, targets, padding_side)

    def splice(
        self,
        input_ids: List[torch.Tensor],
        audio: List[Union[None, torch.Tensor, List[torch.Tensor]]],
        target: Optional[List[torch.Tensor]] = None,
    ) -> Tuple[List[torch.Tensor], Optional[List[torch.Tensor]]]:
        """Per sample: embeddings (L_i, H) with the audio spliced in, and targets (L_i,)."""
        spliced = [
            splice_sample(self.llm.embed, ids, a, None if target is None else target[i])
            for i, (ids, a) in enumerate(zip(input_ids, audio))
        ]
        embeds = [e for e, _ in spliced]
        return embeds, None if target is None else [t for _, t in spliced]

    def supervised_hidden(
        self,
        input_ids: List[torch.Tensor],
        target: List[torch.Tensor],
        audio: List[Union[None, torch.Tensor, List[torch.Tensor]]],
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The LLM's last hidden states (B, T, H) and aligned targets (B, T) for the loss.

        The full sequences, or (frozen LLM, ``reuse_frozen_prefix``) the positions after
        each sample's frozen prefix, whose key/values come from ``self.prefix_cache``.
        """
        embeds, targets = self.splice(input_ids, audio, target)
        dtype = autocast_dtype(self.llm_compute_dtype, embeds[0].device.type)
        if dtype is None:  # (an outer autocast, ESPnet's --use_amp on CUDA, still applies)
            return self._hidden_and_target(input_ids, target, embeds, targets)
        device = embeds[0].device.type
        with torch.autocast(device, dtype=dtype), self._attention_for(device):
            hidden, target = self._hidden_and_target(input_ids, target, embeds, targets)
        return hidden.to(embeds[0].dtype), target

    def _attention_for(self, device: str):
        """On CPU, attention in float32 around bfloat16 projections (its bfloat16 backward
        is the slower one there); elsewhere as the LLM runs it."""
        return float32_attention(self.llm.causal_lm) if device == "cpu" else nullcontext()

    def _hidden_and_target(
        self,
        input_ids: List[torch.Tensor],
        target: List[torch.Tensor],
        embeds: List[torch.Tensor],
        targets: List[torch.Tensor],
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """:meth:`supervised_hidden` after splicing (``embeds``, ``targets``)."""
        lengths = [0] * len(input_ids)
        if self.reuse_frozen_prefix and self._prefix_reusable():
            lengths = [frozen_prefix_length(i, t, self.llm) for i, t in zip(input_ids, target)]
        if not any(lengths):
            batch = pack(embeds, targets)
            hidden = self.llm.hidden_states(
                batch.inputs_embeds, batch.attention_mask, batch.position_ids
            ).last_hidden_state
            return hidden, batch.target
        prefixes = [ids[:n] for ids, n in zip(input_ids, lengths)]
        return hidden_after_frozen_prefix(self.llm, self.prefix_cache, prefixes, embeds, targets)

    def _prefix_reusable(self) -> bool:
        """Whether prefix reuse is exact now; the reason it is not is logged once."""
        blocker = frozen_prefix_blocker(self.llm)
        if blocker is not None and blocker != self._prefix_blocker_reported:
            logging.info("frozen-prefix reuse off, the full sequence runs: %s", blocker)
            self._prefix_blocker_reported = blocker
        return blocker is None

    def forward(
        self,
        input_ids: torch.Tensor,
        input_ids_lengths: torch.Tensor,
        target: torch.Tensor,
        target_lengths: torch.Tensor,
        speech: Optional[torch.Tensor] = None,
        speech_lengths: Optional[torch.Tensor] = None,
        history_speech: Optional[torch.Tensor] = None,
        history_speech_lengths: Optional[torch.Tensor] = None,
        history_speech_splits: Optional[torch.Tensor] = None,
        history_speech_splits_lengths: Optional[torch.Tensor] = None,
        speech_enc: Optional[torch.Tensor] = None,
        speech_enc_lengths: Optional[torch.Tensor] = None,
        label_ids: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        ids = unpad(input_ids, input_ids_lengths)
        tgts = unpad(target, target_lengths)
        history = None
        if history_speech is not None:
            history = split_history(
                history_speech, history_speech_splits, history_speech_splits_lengths
            )
        audio = self.audio_per_sample(
            ids, speech, speech_lengths, history, speech_enc, speech_enc_lengths
        )
        hidden, target = self.supervised_hidden(ids, tgts, audio)
        loss, stats = self.loss(hidden, target)
        if self.label_heads is not None:
            # every batch reports loss_llm (a checkpoint criterion), with labels or without
            stats["loss_llm"] = loss.detach().clone()
        if self.label_heads is not None and label_ids is not None:
            aux, aux_stats = self.label_heads(audio, label_ids)
            stats.update(aux_stats)
            if aux is not None:
                stats["loss_label_aux"] = aux.detach()
                loss = loss + self.label_aux_weight * aux
        stats["loss"] = loss.detach().clone()  # ESPnet divides loss in place (accum_grad)
        # The weight is the loss's normaliser, the number of supervised tokens: ESPnet
        # averages rank (and DataParallel replica) losses weighted by it, which then equals
        # the token mean over the whole batch, as one process computes it.
        weight = (target[:, 1:] != IGNORE_ID).sum()
        return force_gatherable((loss, stats, weight), loss.device)

    def loss(
        self, hidden: torch.Tensor, target: torch.Tensor
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Shifted cross-entropy over supervised positions, with text/speech accuracies."""
        vocab = self.llm.text_vocab_size
        shifted = target[:, 1:]
        rows = shifted != IGNORE_ID
        speech_sample = (target >= vocab).any(dim=1, keepdim=True).expand_as(shifted)[rows]
        labels = shifted[rows]
        logits = self.llm.joint_logits(hidden[:, :-1][rows]).float()
        # Text-only samples use the text softmax alone, as the reference's HF loss does.
        logits[:, vocab:] = logits[:, vocab:].masked_fill(~speech_sample[:, None], float("-inf"))
        loss = nn.functional.cross_entropy(logits, labels)
        correct = logits.argmax(-1) == labels
        is_speech = labels >= vocab
        stats = {
            "acc": correct.float().mean().detach(),
            "acc_text": _mean_or_none(correct[~is_speech]),
            "acc_speech": _mean_or_none(correct[is_speech]),
        }
        return loss, stats

    def collect_feats(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, **kwargs
    ) -> Dict[str, torch.Tensor]:
        feats, feats_lengths = self.frontend(speech, speech_lengths)
        return {"feats": feats, "feats_lengths": feats_lengths}


def split_history(
    history_speech: torch.Tensor,
    history_speech_splits: torch.Tensor,
    history_speech_splits_lengths: torch.Tensor,
) -> List[List[torch.Tensor]]:
    """Collated history audio -> per sample, the waveforms of its past user turns.

    ``history_speech`` (B, S) holds each sample's history waveforms concatenated;
    ``history_speech_splits`` (B, N) their lengths in samples, the first
    ``history_speech_splits_lengths[i]`` of row i valid (the preprocessor's batch keys).
    """
    out = []
    for i, n in enumerate(history_speech_splits_lengths.tolist()):
        sizes = [int(x) for x in history_speech_splits[i, :n]]
        out.append(list(torch.split(history_speech[i, : sum(sizes)], sizes)))
    return out


def _mean_or_none(x: torch.Tensor) -> Optional[torch.Tensor]:
    return x.float().mean().detach() if x.numel() else None
