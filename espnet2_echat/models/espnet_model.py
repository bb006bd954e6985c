"""The OSUM-EChat speech LLM as an ESPnet model: returns (loss, stats, weight) (spec 3)."""

from typing import Dict, List, Optional, Tuple

import torch
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel
from torch import nn

from espnet2_echat.data.templates import AUDIO_PLACEHOLDER, IGNORE_ID
from espnet2_echat.models.splice import PackedBatch, pack, splice_sample, unpad
from espnet2_echat.models.speech_llm import SpeechLLM


class EChatModel(AbsESPnetModel):
    """Whisper-style encoder + adapter feeding a causal LM that answers in text and speech.

    Batch keys (from ``espnet2_echat.data.preprocessor``): ``speech`` (16 kHz waveform),
    ``input_ids`` (unified ids with one ``AUDIO_PLACEHOLDER`` where the user's audio goes,
    none for text-input tasks) and ``target`` (same length; ``IGNORE_ID`` where unsupervised,
    otherwise the id the model must emit at that position).

    The loss is the reference's: next-token cross-entropy, mean over supervised positions,
    over ``lm_head ⊕ speech_head`` for samples with speech targets and over ``lm_head`` only
    for text-only samples. Logits are computed on supervised rows only.
    """

    def __init__(
        self,
        frontend: AbsFrontend,
        encoder: nn.Module,
        adapter: nn.Module,
        llm: SpeechLLM,
    ):
        super().__init__()
        self.frontend = frontend
        self.encoder = encoder
        self.adapter = adapter
        self.llm = llm

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
    ) -> List[Optional[torch.Tensor]]:
        """Encode the speech of the samples that have an audio placeholder (others: None)."""
        needs = [bool((ids == AUDIO_PLACEHOLDER).any()) for ids in input_ids]
        audio: List[Optional[torch.Tensor]] = [None] * len(input_ids)
        index = [i for i, n in enumerate(needs) if n]
        if index:
            if speech is None:
                raise ValueError("input_ids hold an audio placeholder but no speech was given")
            sel = torch.tensor(index, device=speech.device)
            emb, lengths = self.encode_speech(speech[sel], speech_lengths[sel])
            for i, e in zip(index, unpad(emb, lengths)):
                audio[i] = e
        return audio

    def build_inputs(
        self,
        input_ids: List[torch.Tensor],
        audio: List[Optional[torch.Tensor]],
        target: Optional[List[torch.Tensor]] = None,
        padding_side: str = "right",
    ) -> PackedBatch:
        """Splice audio into each sample and pack the batch."""
        spliced = [
            splice_sample(self.llm.embed, ids, a, None if target is None else target[i])
            for i, (ids, a) in enumerate(zip(input_ids, audio))
        ]
        embeds = [e for e, _ in spliced]
        targets = None if target is None else [t for _, t in spliced]
        return pack(embeds, targets, padding_side)

    def forward(
        self,
        input_ids: torch.Tensor,
        input_ids_lengths: torch.Tensor,
        target: torch.Tensor,
        target_lengths: torch.Tensor,
        speech: Optional[torch.Tensor] = None,
        speech_lengths: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        ids = unpad(input_ids, input_ids_lengths)
        tgts = unpad(target, target_lengths)
        audio = self.audio_per_sample(ids, speech, speech_lengths)
        batch = self.build_inputs(ids, audio, tgts)
        hidden = self.llm.hidden_states(
            batch.inputs_embeds, batch.attention_mask, batch.position_ids
        ).last_hidden_state
        loss, stats = self.loss(hidden, batch.target)
        stats["loss"] = loss.detach()
        return force_gatherable((loss, stats, torch.tensor(len(ids))), loss.device)

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


def _mean_or_none(x: torch.Tensor) -> Optional[torch.Tensor]:
    return x.float().mean().detach() if x.numel() else None
