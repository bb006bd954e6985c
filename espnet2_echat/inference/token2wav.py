"""Token2wav inference: speech tokens -> 22.05 kHz waveform, offline or chunked.

    t2w = Token2WavInference.from_pretrained("exp/token2wav")          # config.yaml + model.pth
    wav = t2w([12, 873, 4001, ...])                                   # (S,) float32, t2w.fs Hz
    for chunk in t2w.stream(token_pieces):                            # as tokens arrive
        play(chunk)

The flow's initial noise comes from a ``torch.Generator`` re-seeded with ``seed`` on every
call, so the same tokens give the same audio (the reference draws from the global RNG).
"""

import json
import logging
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import soundfile
import torch
from espnet2.fileio.sound_scp import SoundScpReader

from espnet2_echat.models.token2wav.prompt_frontend import speaker_prompt_from_files
from espnet2_echat.models.token2wav.speaker_prompt import SpeakerPrompt
from espnet2_echat.safety.names import child_path
from espnet2_echat.tasks.token2wav import Token2WavTask

MATMUL_DTYPES = {"float32": None, "bfloat16": torch.bfloat16}
ESTIMATOR_BACKENDS = ("torch", "onnx", "compiled")


class Token2WavInference:
    """Synthesise speech from speech tokens with a token2wav model.

    Args:
        train_config: ``config.yaml`` of the model.
        model_file: ``model.pth`` of the model.
        device: ``auto``, ``cpu``, ``cuda[:i]`` or ``npu[:i]`` (see ``train/devices.py``).
        n_timesteps: Euler steps of the flow solver (10 as the reference; fewer is faster).
        seed: Seed of the noise generator, re-applied on every call.
        reference_compat: Streaming with the reference's 34-frame flow cache (see
            ``espnet2_echat.models.token2wav.streaming``).
        prompt: Speaker prompt; default the one stored with the model.
        prompt_wav: Build the prompt from this wav instead (with ``prompt_speech_token``,
            a one-line token file, and ``prompt_embedding``, a ``.npy`` x-vector; a model
            trained with the stand-in embedding takes the stand-in when none is given).
        onnx_dir: Directory with ``campplus.onnx`` / ``speech_tokenizer_v1.onnx``.
        matmul_dtype: ``float32`` (default, the reference's arithmetic) or ``bfloat16``:
            the flow estimator's transformer products and the HiFT vocoder's convolutions
            in bfloat16 (residuals, norms, activations, the estimator's convolutions and the
            iSTFT stay float32), ~1.8x faster on CPUs with AMX/AVX512-BF16 and on GPUs; its
            error against float32 is measured in ``benchmarks/README.md``.
        first_token_hop_len: Tokens the first streamed chunk advances (default the
            reference's 50).
        estimator_backend: ``torch`` (default) or ``onnx``: the flow estimator exported
            with ``torch.onnx`` and run by ONNX Runtime on CPU (float32, equal to the torch
            estimator within round-off; ~0.85x its time on a 2-core Xeon, see
            ``benchmarks/token2wav_rtf.md``). Not combinable with ``bfloat16``. Or
            ``compiled``: the torch estimator (any ``matmul_dtype``) under ``torch.compile``
            with symbolic lengths, one program for every utterance length; the first call
            compiles (about 2 minutes on a 2-core CPU). bfloat16 compiled took 0.67x the
            reference's arithmetic's time against 0.76x eager in one run on a 2-core AMD
            EPYC (``benchmarks/README.md``).
    """

    def __init__(
        self,
        train_config: Union[str, Path],
        model_file: Union[str, Path],
        device: str = "cpu",
        n_timesteps: int = 10,
        seed: int = 0,
        reference_compat: bool = False,
        prompt: Optional[SpeakerPrompt] = None,
        prompt_wav: Optional[Union[str, Path]] = None,
        prompt_speech_token: Optional[Union[str, Path]] = None,
        prompt_embedding: Optional[Union[str, Path]] = None,
        onnx_dir: Optional[Union[str, Path]] = None,
        matmul_dtype: str = "float32",
        first_token_hop_len: Optional[int] = None,
        estimator_backend: str = "torch",
    ):
        from espnet2_echat.train.devices import resolve_device

        if n_timesteps < 1:
            raise ValueError(f"n_timesteps must be >= 1, got {n_timesteps}")
        device = resolve_device(device)  # auto | cpu | cuda[:i] | npu[:i]
        if matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(
                f"matmul_dtype must be one of {sorted(MATMUL_DTYPES)}, got {matmul_dtype!r}"
            )
        self.model, _ = Token2WavTask.build_model_from_file(
            train_config, model_file, device
        )
        self.model.eval()
        self.model.flow.decoder.estimator.set_matmul_dtype(MATMUL_DTYPES[matmul_dtype])
        if self.model.vocoder_type == "hift":
            self.model.hift.set_conv_dtype(MATMUL_DTYPES[matmul_dtype])
        self._use_estimator_backend(estimator_backend, matmul_dtype, device)
        self.device = device
        self.n_timesteps = n_timesteps
        self.seed = seed
        self.reference_compat = reference_compat
        self.first_token_hop_len = first_token_hop_len
        if prompt is None and prompt_wav is not None:
            prompt = speaker_prompt_from_files(
                prompt_wav,
                self.model.mel,
                prompt_speech_token,
                prompt_embedding,
                onnx_dir,
            )
        elif prompt_speech_token or prompt_embedding:
            raise ValueError("prompt_speech_token / prompt_embedding need prompt_wav")
        self.prompt = prompt or self.model.stored_prompt()
        self.prompt.check(
            self.model.flow.vocab_size,
            self.model.flow.output_size,
            self.model.flow.spk_embed_dim,
        )

    def _use_estimator_backend(self, backend: str, matmul_dtype: str, device: str) -> None:
        """Swap the flow's estimator for its ONNX Runtime export when ``backend`` is onnx."""
        if backend not in ESTIMATOR_BACKENDS:
            raise ValueError(
                f"estimator_backend must be one of {ESTIMATOR_BACKENDS}, got {backend!r}"
            )
        if backend == "torch":
            return
        cfm = self.model.flow.decoder
        if backend == "compiled":
            cfm.estimator = torch.compile(cfm.estimator, dynamic=True)
            return
        if matmul_dtype != "float32" or torch.device(device).type != "cpu":
            raise ValueError(
                "estimator_backend='onnx' runs the float32 estimator on CPU; got "
                f"matmul_dtype={matmul_dtype!r}, device={device!r}"
            )
        from espnet2_echat.models.token2wav.onnx_estimator import OnnxEstimator

        cfm.estimator = OnnxEstimator(cfm.estimator)

    @classmethod
    def from_pretrained(
        cls, model_dir: Union[str, Path], **kwargs
    ) -> "Token2WavInference":
        """Load ``model_dir/config.yaml`` and ``model_dir/model.pth``."""
        model_dir = Path(model_dir)
        return cls(model_dir / "config.yaml", model_dir / "model.pth", **kwargs)

    @property
    def fs(self) -> int:
        """Output sampling rate."""
        return self.model.sample_rate

    def _generator(self) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.seed)

    def _prompt(self) -> SpeakerPrompt:
        p = self.prompt
        return SpeakerPrompt(
            p.prompt_token.to(self.device),
            p.prompt_feat.to(self.device),
            p.embedding.to(self.device),
        )

    @torch.no_grad()
    def __call__(self, tokens: Sequence[int]) -> np.ndarray:
        """Offline synthesis of one utterance: (S,) float32 at ``fs``."""
        wav = self.model.synthesize(
            tokens,
            self._prompt(),
            n_timesteps=self.n_timesteps,
            generator=self._generator(),
        )
        return wav[0].cpu().numpy()

    def stream(self, token_pieces: Iterable[Iterable[int]]) -> Iterator[np.ndarray]:
        """Chunked synthesis: yields audio as soon as 2 s of tokens (+20 overlap) exist."""
        for chunk in self.model.synthesize_stream(
            token_pieces,
            self._prompt(),
            n_timesteps=self.n_timesteps,
            generator=self._generator(),
            reference_compat=self.reference_compat,
            first_token_hop_len=self.first_token_hop_len,
        ):
            yield chunk[0].cpu().numpy()


def read_speech_token_file(path: Union[str, Path]) -> Iterator[tuple]:
    """Yield ``(uttid, [ids])`` from a Kaldi-style ``uttid id id ...`` file."""
    with Path(path).open("r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                ids = [int(x) for x in fields[1:]]
            except ValueError:
                raise ValueError(
                    f"{path}:{lineno}: utterance {fields[0]}: speech tokens must be integers"
                ) from None
            if not ids:
                raise ValueError(
                    f"{path}:{lineno}: utterance {fields[0]} has no speech tokens"
                )
            yield fields[0], ids


@torch.no_grad()
def mel_distance(
    t2w: Token2WavInference, wav: np.ndarray, ref: np.ndarray, ref_fs: int
) -> float:
    """Mean absolute log-mel difference between synthesised and reference audio.

    Both go through the model's mel front-end (the reference resampled to ``t2w.fs``);
    frames are compared up to the shorter of the two.
    """
    ref_t = torch.as_tensor(ref, dtype=torch.float32).reshape(1, -1)
    if ref_t.numel() == 0:
        raise ValueError("empty reference audio")
    mel = t2w.model.mel.to("cpu")
    a = mel(torch.from_numpy(wav).reshape(1, -1))
    b = t2w.model.speech_to_mel(ref_t, ref_fs).transpose(1, 2)
    n = min(a.shape[2], b.shape[2])
    return float((a[:, :, :n] - b[:, :, :n]).abs().mean())


def synthesize_speech_token_file(
    speech_token: Union[str, Path],
    output_dir: Union[str, Path],
    train_config: Union[str, Path],
    model_file: Union[str, Path],
    streaming: bool = False,
    reference_wav_scp: Optional[Union[str, Path]] = None,
    **kwargs,
) -> Path:
    """Synthesise every utterance of a ``speech_token`` file; write wavs and ``wav.scp``.

    With ``reference_wav_scp`` (the original audio of the tokens) also writes
    ``mel_distance`` (``uttid value``) and ``mel_distance.json`` (mean over utterances),
    a resynthesis check that a trained model scores clearly lower than an untrained one.

    Returns:
        Path of the written ``wav.scp``.
    """
    t2w = Token2WavInference(train_config, model_file, **kwargs)
    refs = (
        SoundScpReader(str(reference_wav_scp), dtype="float32")
        if reference_wav_scp
        else None
    )
    distances = {}
    out = Path(output_dir)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    lines = []
    for uttid, ids in read_speech_token_file(speech_token):
        try:
            wav = np.concatenate(list(t2w.stream([ids]))) if streaming else t2w(ids)
        except ValueError as err:
            raise ValueError(f"{speech_token}: utterance {uttid}: {err}") from None
        if refs is not None:
            if uttid not in refs:
                raise ValueError(f"{reference_wav_scp}: no utterance {uttid}")
            ref_fs, ref = refs[uttid]
            distances[uttid] = mel_distance(
                t2w, wav, ref.reshape(-1) if ref.ndim == 1 else ref.mean(axis=1), ref_fs
            )
        path = child_path(out / "wav", uttid, ".wav").resolve()
        soundfile.write(path, wav, t2w.fs, subtype="PCM_16")
        lines.append(f"{uttid} {path}\n")
        logging.info("%s: %.2f s", uttid, len(wav) / t2w.fs)
    scp = out / "wav.scp"
    scp.write_text("".join(lines), encoding="utf-8")
    if refs is not None:
        (out / "mel_distance").write_text(
            "".join(f"{u} {d:.4f}\n" for u, d in distances.items()), encoding="utf-8"
        )
        summary = {
            "num_utts": len(distances),
            "mean": float(np.mean(list(distances.values()))),
        }
        (out / "mel_distance.json").write_text(
            json.dumps(summary, indent=1) + "\n", encoding="utf-8"
        )
        logging.info(
            "mean mel distance to %s: %.4f", reference_wav_scp, summary["mean"]
        )
    return scp
