"""Build a ``SpeakerPrompt`` from a prompt wav (and optionally CAM++ / S3-tokenizer ONNX).

The reference computes the prompt with three models: the Matcha mel (here), the S3 speech
tokenizer (``speech_tokenizer_v1.onnx``) and CAM++ (``campplus.onnx``). The two ONNX models
run through onnxruntime (installed with faster-whisper) when the user has the files, fed as
CosyVoice's ``CosyVoiceFrontEnd`` feeds them; otherwise the tokens come from a file (or are
left empty) and the x-vector from a ``.npy`` file or, as a clearly named stand-in,
``standin_speaker_embedding``.
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


CAMPPLUS_ONNX = "campplus.onnx"
S3_TOKENIZER_ONNX = "speech_tokenizer_v1.onnx"
S3_MAX_SECONDS = 30


def _onnx_session(onnx_path: Union[str, Path], what: str, num_inputs: int):
    """An onnxruntime CPU session as CosyVoice opens it (one intra-op thread)."""
    import onnxruntime

    if not Path(onnx_path).is_file():
        raise FileNotFoundError(f"{what}: no ONNX file {onnx_path}")
    option = onnxruntime.SessionOptions()
    option.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    option.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(onnx_path), sess_options=option, providers=["CPUExecutionProvider"]
    )
    names = [i.name for i in session.get_inputs()]
    if len(names) != num_inputs:
        raise ValueError(
            f"{what}: {onnx_path} takes inputs {names}, expected {num_inputs} input(s)"
        )
    return session


def _check_16k(wav_16k: torch.Tensor, sample_rate: int, what: str) -> None:
    if sample_rate != 16000:
        raise ValueError(
            f"{what} takes 16 kHz audio (got {sample_rate} Hz); resample it first"
        )
    if wav_16k.dim() != 2 or wav_16k.shape[0] != 1:
        raise ValueError(f"{what} takes a (1, N) wav, got {tuple(wav_16k.shape)}")


def campplus_fbank(wav_16k: torch.Tensor) -> torch.Tensor:
    """CAM++ input (T, 80): Kaldi fbank at 16 kHz, dither 0, mean-normalised over time."""
    feat = torchaudio.compliance.kaldi.fbank(
        wav_16k, num_mel_bins=80, dither=0, sample_frequency=16000
    )
    return feat - feat.mean(dim=0, keepdim=True)


def campplus_embedding(
    wav_16k: torch.Tensor, onnx_path: Union[str, Path], sample_rate: int = 16000
) -> torch.Tensor:
    """CAM++ x-vector (1, 192) as CosyVoice's ``_extract_spk_embedding``: fbank (1, T, 80)."""
    _check_16k(wav_16k, sample_rate, "CAM++")
    session = _onnx_session(onnx_path, "CAM++", 1)
    feat = campplus_fbank(wav_16k.float())
    name = session.get_inputs()[0].name
    out = session.run(None, {name: feat.unsqueeze(0).numpy()})[0]
    return torch.from_numpy(np.asarray(out, dtype=np.float32)).reshape(1, -1)


def whisper_log_mel(wav_16k: torch.Tensor, n_mels: int = 128) -> np.ndarray:
    """``whisper.log_mel_spectrogram(wav, n_mels)`` (padding 0): (1, n_mels, N // 160)."""
    from transformers import WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(feature_size=n_mels)
    return fe(
        wav_16k[0].numpy(), sampling_rate=16000, return_tensors="np", padding=False
    ).input_features.astype(np.float32)


def s3_tokens(
    wav_16k: torch.Tensor, onnx_path: Union[str, Path], sample_rate: int = 16000
) -> torch.Tensor:
    """S3 speech tokens (1, N) as CosyVoice's ``_extract_speech_token`` (prompt <= 30 s).

    Inputs: the Whisper 128-bin log-mel (1, 128, T) float32 and its length (1,) int32.
    """
    _check_16k(wav_16k, sample_rate, "the S3 tokenizer")
    if wav_16k.shape[1] > S3_MAX_SECONDS * 16000:
        raise ValueError(
            f"the S3 tokenizer takes prompts of at most {S3_MAX_SECONDS} s "
            f"(got {wav_16k.shape[1] / 16000:.2f} s)"
        )
    session = _onnx_session(onnx_path, "the S3 tokenizer", 2)
    feat = whisper_log_mel(wav_16k.float(), 128)
    inputs = session.get_inputs()
    out = session.run(
        None,
        {
            inputs[0].name: feat,
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

    ``mel`` is the model's mel front-end (or its arguments). With ``onnx_dir``, what is
    not given comes from its ``speech_tokenizer_v1.onnx`` / ``campplus.onnx`` (a missing
    file is an error); without it, no tokens and the stand-in x-vector.
    """
    if isinstance(mel, dict):
        mel = MatchaMelSpectrogram(**mel)
    wav = load_wav(wav_path, mel.sample_rate)
    feat = mel(wav).transpose(1, 2)
    wav_16k = torchaudio.functional.resample(wav, mel.sample_rate, 16000)
    onnx_dir = Path(onnx_dir) if onnx_dir else None
    if onnx_dir is not None and not onnx_dir.is_dir():
        raise FileNotFoundError(f"onnx_dir {onnx_dir} is not a directory")
    if prompt_token is None:
        if onnx_dir is not None:
            prompt_token = s3_tokens(wav_16k, onnx_dir / S3_TOKENIZER_ONNX)
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
    elif onnx_dir is not None:
        embedding = campplus_embedding(wav_16k, onnx_dir / CAMPPLUS_ONNX)
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
