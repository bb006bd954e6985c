"""Build a ``SpeakerPrompt`` from a prompt wav (and optionally CAM++ / S3-tokenizer ONNX).

The reference computes the prompt with three models: the Matcha mel (here), the S3 speech
tokenizer (``speech_tokenizer_v1.onnx``) and CAM++ (``campplus.onnx``). The two ONNX models
run through onnxruntime when the user has the files (optional: ``pip install onnxruntime``);
otherwise the tokens come from a file (or are left empty) and the x-vector from a ``.npy``
file or, as a clearly named stand-in, ``standin_speaker_embedding``.
"""

import logging
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np
import soundfile
import torch
import torchaudio

from espnet2_echat.models.token2wav.mel import MatchaMelSpectrogram
from espnet2_echat.models.token2wav.speaker_prompt import (
    SpeakerPrompt,
    standin_speaker_embedding,
)


def load_wav(path: Union[str, Path], sample_rate: int) -> torch.Tensor:
    """Read a mono wav and resample it to ``sample_rate``: (1, N) float32."""
    wav, fs = soundfile.read(str(path), dtype="float32", always_2d=True)
    wav = torch.from_numpy(wav.mean(axis=1))[None]
    if fs != sample_rate:
        wav = torchaudio.functional.resample(wav, fs, sample_rate)
    return wav


def campplus_embedding(
    wav_16k: torch.Tensor, onnx_path: Union[str, Path]
) -> torch.Tensor:
    """CAM++ x-vector (1, 192): 80-bin Kaldi fbank, dither 0, mean-normalised, via onnxruntime."""
    import onnxruntime

    feat = torchaudio.compliance.kaldi.fbank(
        wav_16k, num_mel_bins=80, dither=0, sample_frequency=16000
    )
    feat = feat - feat.mean(dim=0, keepdim=True)
    session = onnxruntime.InferenceSession(
        str(onnx_path), providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    out = session.run(None, {name: feat.unsqueeze(0).numpy()})[0]
    return torch.from_numpy(np.asarray(out, dtype=np.float32)).reshape(1, -1)


def s3_tokens(wav_16k: torch.Tensor, onnx_path: Union[str, Path]) -> torch.Tensor:
    """S3 speech tokens (1, N) of a <= 30 s 16 kHz wav: Whisper 128-bin log-mel -> ONNX."""
    import onnxruntime
    from transformers import WhisperFeatureExtractor

    if wav_16k.shape[1] > 30 * 16000:
        raise ValueError("the S3 tokenizer takes prompts of at most 30 s")
    fe = WhisperFeatureExtractor(feature_size=128)
    feat = fe(
        wav_16k[0].numpy(), sampling_rate=16000, return_tensors="np", padding=False
    ).input_features
    session = onnxruntime.InferenceSession(
        str(onnx_path), providers=["CPUExecutionProvider"]
    )
    inputs = session.get_inputs()
    out = session.run(
        None,
        {
            inputs[0].name: feat.astype(np.float32),
            inputs[1].name: np.array([feat.shape[2]], dtype=np.int32),
        },
    )[0]
    return torch.from_numpy(np.asarray(out)).reshape(1, -1).long()


def build_speaker_prompt(
    wav_path: Union[str, Path],
    mel: Union[Dict, MatchaMelSpectrogram],
    prompt_token: Optional[torch.Tensor] = None,
    embedding_npy: Optional[Union[str, Path]] = None,
    onnx_dir: Optional[Union[str, Path]] = None,
    spk_embed_dim: int = 192,
) -> SpeakerPrompt:
    """Prompt mel from ``wav_path``; tokens and x-vector from the given files or ONNX models.

    ``mel`` is the model's mel front-end (or its arguments).
    """
    if isinstance(mel, dict):
        mel = MatchaMelSpectrogram(**mel)
    wav = load_wav(wav_path, mel.sample_rate)
    feat = mel(wav).transpose(1, 2)
    wav_16k = torchaudio.functional.resample(wav, mel.sample_rate, 16000)
    onnx_dir = Path(onnx_dir) if onnx_dir else None
    if prompt_token is None:
        if onnx_dir is not None and (onnx_dir / "speech_tokenizer_v1.onnx").is_file():
            prompt_token = s3_tokens(wav_16k, onnx_dir / "speech_tokenizer_v1.onnx")
        else:
            logging.warning(
                "no prompt speech tokens given: the prompt keeps only the x-vector "
                "(the flow needs the prompt mel and its tokens together)"
            )
            prompt_token = torch.zeros(1, 0, dtype=torch.long)
    if embedding_npy is not None:
        embedding = torch.from_numpy(np.load(embedding_npy).astype(np.float32)).reshape(
            1, -1
        )
    elif onnx_dir is not None and (onnx_dir / "campplus.onnx").is_file():
        embedding = campplus_embedding(wav_16k, onnx_dir / "campplus.onnx")
    else:
        logging.warning(
            "no x-vector given: using the STAND-IN speaker embedding (not CAM++)"
        )
        embedding = standin_speaker_embedding(feat, spk_embed_dim)
    if prompt_token.shape[1] == 0:
        feat = feat[:, :0]
    return SpeakerPrompt(prompt_token, feat, embedding)


def read_prompt_tokens(path: Union[str, Path]) -> torch.Tensor:
    """Read prompt speech tokens: one line ``[uttid] id id ...`` -> (1, N) int64."""
    lines = [
        ln.split()
        for ln in Path(path).read_text(encoding="utf-8").splitlines()
        if ln.strip()
    ]
    if len(lines) != 1:
        raise ValueError(
            f"{path}: expected one line of speech-token ids, got {len(lines)} lines"
        )
    fields = lines[0]
    if fields and not fields[0].lstrip("-").isdigit():
        fields = fields[1:]
    try:
        return torch.tensor([[int(x) for x in fields]], dtype=torch.long)
    except ValueError as err:
        raise ValueError(
            f"{path}: line 1: speech tokens must be integers ({err})"
        ) from None


def speaker_prompt_from_files(
    prompt_wav: Union[str, Path],
    mel: Union[Dict, MatchaMelSpectrogram],
    prompt_speech_token: Optional[Union[str, Path]] = None,
    prompt_embedding: Optional[Union[str, Path]] = None,
    onnx_dir: Optional[Union[str, Path]] = None,
) -> SpeakerPrompt:
    """``build_speaker_prompt`` with the prompt tokens read from a file."""
    tokens = read_prompt_tokens(prompt_speech_token) if prompt_speech_token else None
    return build_speaker_prompt(
        prompt_wav,
        mel,
        prompt_token=tokens,
        embedding_npy=prompt_embedding,
        onnx_dir=onnx_dir,
    )
