"""Speech-token targets at 25 Hz: CosyVoice S3 tokens, or a STAND-IN k-means tokenizer.

OSUM-EChat's speech targets are CosyVoice-300M-25Hz S3 tokens (0..4095,
docs/data_pipeline.md#speech-tokens). Their ONNX weights are not available offline, so two
tokenizers share one interface (``encode(wav, fs) -> list of ids``):

* :class:`S3SpeechTokenizer`: the real one, through the optional ``s3tokenizer`` package
  (``pip install s3tokenizer==0.3.0``) and a ``speech_tokenizer_v1.onnx`` file the user
  gives. Nothing is downloaded.
* :class:`StandInSpeechTokenizer`: a **stand-in**, not the S3 tokenizer: k-means (K
  clusters, K from config, e.g. 256) over 80-dim log-mel frames with a 40 ms hop, i.e.
  25 tokens per second like S3. It needs no weights and is trained in the recipe; its
  tokens carry acoustic, not semantic, information. A model trained on them cannot use
  the released token2wav.

:func:`extract_speech_tokens` fills a data dir's ``speech_token`` file (and the token
lists of its ``history`` turns) from the reply audio (``reply_wav.scp``, S2S) or the
utterance's own audio (``wav.scp``, TTS).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Protocol

import numpy as np

from espnet2_echat.data.audio import load_audio, resample
from espnet2_echat.data.datadir import read_kaldi_map, write_kaldi_map
from espnet2_echat.progress import Tally

FS = 16000
TOKEN_RATE = 25  # tokens per second, as CosyVoice-300M-25Hz


class SpeechTokenizer(Protocol):
    """What :func:`extract_speech_tokens` needs from a tokenizer."""

    vocab_size: int

    def encode(self, wav: np.ndarray, fs: int) -> List[int]:
        """Return the token ids of a mono waveform."""


class StandInSpeechTokenizer:
    """STAND-IN speech tokenizer: k-means over log-mel frames at 25 Hz.

    Not CosyVoice's S3 tokenizer (whose weights are not available offline). The
    "model" is the centroid matrix plus the feature settings, saved as ``.npz``.
    """

    n_fft = 1024
    hop_length = FS // TOKEN_RATE  # 640 samples = 40 ms
    n_mels = 80

    def __init__(self, centroids: np.ndarray):
        if centroids.ndim != 2 or centroids.shape[1] != self.n_mels:
            raise ValueError(f"centroids must be (K, {self.n_mels}), got {centroids.shape}")
        self.centroids = centroids.astype(np.float64)
        self.vocab_size = int(centroids.shape[0])
        self._sq_norms = (self.centroids**2).sum(axis=1)

    @classmethod
    def features(cls, wav: np.ndarray) -> np.ndarray:
        """Log-mel frames (T, 80) of a 16 kHz waveform, T = 1 + len // 640."""
        import librosa  # here: librosa (with scipy) costs ~1.5 s, more than a CLI's --help

        mel = librosa.feature.melspectrogram(
            y=np.asarray(wav, dtype=np.float64),
            sr=FS,
            n_fft=cls.n_fft,
            hop_length=cls.hop_length,
            n_mels=cls.n_mels,
            center=True,
        )
        return np.log(np.maximum(mel, 1e-10)).T

    @classmethod
    def train(
        cls,
        wav_paths: Iterable[str],
        vocab_size: int = 256,
        seed: int = 0,
        max_frames: int = 200_000,
    ) -> "StandInSpeechTokenizer":
        """Fit K = ``vocab_size`` centroids on the frames of the given audio files."""
        from sklearn.cluster import MiniBatchKMeans

        frames = np.concatenate([cls.features(load_audio(p)) for p in wav_paths])
        if len(frames) < vocab_size:
            raise ValueError(
                f"{len(frames)} frames are too few to train {vocab_size} clusters; "
                "give more audio or a smaller vocab_size"
            )
        if len(frames) > max_frames:
            keep = np.random.default_rng(seed).choice(len(frames), max_frames, replace=False)
            frames = frames[np.sort(keep)]
        kmeans = MiniBatchKMeans(
            n_clusters=vocab_size, random_state=seed, n_init=1, batch_size=4096, max_iter=100
        )
        kmeans.fit(frames)
        logging.info("stand-in tokenizer: K=%d trained on %d frames", vocab_size, len(frames))
        return cls(kmeans.cluster_centers_)

    def encode(self, wav: np.ndarray, fs: int = FS) -> List[int]:
        """Nearest-centroid id of every 40 ms frame."""
        feats = self.features(resample(np.asarray(wav, dtype=np.float64), fs, FS))
        dist = self._sq_norms[None, :] - 2.0 * feats @ self.centroids.T
        return dist.argmin(axis=1).tolist()

    def save(self, path: Path) -> None:
        """Save as ``.npz`` (centroids + feature settings, no pickled objects)."""
        with open(path, "wb") as f:  # a file object: numpy keeps the name as given
            np.savez(
                f,
                centroids=self.centroids,
                kind=np.array("echat-standin-kmeans-logmel"),
                fs=FS,
                hop_length=self.hop_length,
                n_fft=self.n_fft,
                n_mels=self.n_mels,
            )

    @classmethod
    def load(cls, path: Path) -> "StandInSpeechTokenizer":
        """Load a file written by :meth:`save`; check its feature settings."""
        with np.load(path, allow_pickle=False) as data:
            if str(data["kind"]) != "echat-standin-kmeans-logmel":
                raise ValueError(f"{path} is not a stand-in speech tokenizer file")
            for key in ("fs", "hop_length", "n_fft", "n_mels"):
                expected = FS if key == "fs" else getattr(cls, key)
                if int(data[key]) != expected:
                    raise ValueError(f"{path}: {key}={int(data[key])}, expected {expected}")
            return cls(data["centroids"])


class S3SpeechTokenizer:
    """CosyVoice S3 tokenizer through the optional ``s3tokenizer`` package.

    Args:
        model_file: the ONNX file (e.g. ``speech_tokenizer_v1.onnx`` of
            CosyVoice-300M-25Hz, as OSUM-EChat uses).
        name: the s3tokenizer model name that fixes the architecture. Loading by path
            alone would build the 50 Hz v1 model, so the 25 Hz name is given explicitly.
    """

    def __init__(self, model_file: Path, name: str = "speech_tokenizer_v1_25hz"):
        try:
            import s3tokenizer
        except ImportError as e:
            raise ImportError(
                "the S3 tokenizer needs the optional package s3tokenizer "
                "(pip install s3tokenizer==0.3.0); or use the stand-in tokenizer"
            ) from e
        if not Path(model_file).is_file():
            raise FileNotFoundError(f"S3 tokenizer model file {model_file} does not exist")
        classes = {"v2": "S3TokenizerV2", "v3": "S3TokenizerV3"}
        cls_name = next((c for k, c in classes.items() if k in name), "S3Tokenizer")
        self._s3 = s3tokenizer
        self.model = getattr(s3tokenizer, cls_name)(name)
        self.model.init_from_onnx(str(model_file))
        self.model.eval()
        self.vocab_size = int(self.model.config.n_codebook_size)

    def encode(self, wav: np.ndarray, fs: int = FS) -> List[int]:
        """S3 token ids of a waveform (resampled to 16 kHz first)."""
        import torch

        audio = torch.from_numpy(resample(np.asarray(wav, dtype=np.float64), fs, FS)).float()
        mel = self._s3.log_mel_spectrogram(audio)
        mels, mels_lens = self._s3.padding([mel])
        codes, codes_lens = self.model.quantize(mels, mels_lens)
        return codes[0, : int(codes_lens[0])].tolist()


def load_speech_tokenizer(
    kind: str, model_file: Path, s3_name: str = "speech_tokenizer_v1_25hz"
) -> SpeechTokenizer:
    """Return the ``standin`` (``.npz``) or ``s3`` (ONNX) tokenizer of a model file."""
    if kind == "standin":
        return StandInSpeechTokenizer.load(model_file)
    if kind == "s3":
        return S3SpeechTokenizer(model_file, s3_name)
    raise ValueError(f"unknown speech tokenizer {kind!r}; expected standin or s3")


def _needs_tokens(task: str) -> bool:
    return "<TEXT2TOKEN>" in task.split() or task == "<Speech2TEXTandTOKEN>"


def extract_speech_tokens(
    data_dir: Path,
    tokenizer: SpeechTokenizer,
    audio_loader: Callable[[str], np.ndarray] = load_audio,
    errors: Optional[Dict[str, str]] = None,
    tally: Optional[Tally] = None,
) -> int:
    """Write ``speech_token`` (and fill ``history`` token lists) of one data dir.

    The audio of an utterance's tokens is its ``reply_wav.scp`` entry when there is one
    (S2S: the reply), else its ``wav.scp`` entry (TTS: the utterance itself). Only
    utterances whose task produces speech get tokens. Returns the number tokenised.

    With ``errors`` given, an utterance whose audio is missing or unreadable (or gives no
    tokens) is recorded there (``uttid -> reason``) and left without tokens, and the others
    are still written; without it the first such utterance raises. ``tally`` (a progress
    bar and counts) counts each utterance: done, skipped (its task makes no speech) or failed.
    """
    tally = Tally() if tally is None else tally
    data_dir = Path(data_dir)
    tasks = read_kaldi_map(data_dir / "task")
    sources: Dict[str, str] = {}
    for name in ("wav.scp", "reply_wav.scp"):
        if (data_dir / name).is_file():
            sources.update(read_kaldi_map(data_dir / name))
    tokens: Dict[str, str] = {}
    tally.begin(len(tasks), f"speech tokens of {data_dir}")
    for utt, task in tasks.items():
        if not _needs_tokens(task):
            tally.add("skipped")
            continue
        try:
            if utt not in sources:
                raise ValueError(
                    f"{data_dir}: utt {utt} (task {task}) has no reply_wav.scp/wav.scp entry"
                )
            try:
                ids = tokenizer.encode(audio_loader(sources[utt]), FS)
            except (OSError, RuntimeError, ValueError) as e:
                raise ValueError(f"{data_dir}: utt {utt}: cannot read {sources[utt]}: {e}") from e
            if not ids:
                raise ValueError(f"{data_dir}: utt {utt}: {sources[utt]} gave no speech tokens")
        except ValueError as e:
            if errors is None:
                raise
            errors[utt] = str(e)
            tally.add("failed")
            continue
        tokens[utt] = " ".join(map(str, ids))
        tally.add("done")
    tally.end()
    if tokens:
        write_kaldi_map(data_dir / "speech_token", tokens)
    if (data_dir / "history").is_file():
        history = read_kaldi_map(data_dir / "history")
        for utt, value in history.items():
            turns = json.loads(value)
            for i, turn in enumerate(turns):
                if "reply_wav" not in turn:
                    if not turn.get("speech_token"):
                        raise ValueError(
                            f"{data_dir}/history: utt {utt}: turn {i} has no reply_wav"
                        )
                    continue
                turn["speech_token"] = tokenizer.encode(audio_loader(turn["reply_wav"]), FS)
            history[utt] = json.dumps(turns, ensure_ascii=False)
        write_kaldi_map(data_dir / "history", history)
    logging.info("%s: speech tokens for %d utterances", data_dir, len(tokens))
    return len(tokens)


def train_standin_tokenizer(
    data_dirs: Iterable[Path],
    out_file: Path,
    vocab_size: int = 256,
    seed: int = 0,
    max_utts: Optional[int] = None,
) -> StandInSpeechTokenizer:
    """Train the stand-in tokenizer on the speech-output audio of data dirs and save it.

    Uses every ``reply_wav.scp`` entry, and ``wav.scp`` entries of TTS utterances, i.e.
    the audio whose tokens become targets.
    """
    paths: List[str] = []
    for data_dir in data_dirs:
        data_dir = Path(data_dir)
        tasks = read_kaldi_map(data_dir / "task")
        if (data_dir / "reply_wav.scp").is_file():
            paths += read_kaldi_map(data_dir / "reply_wav.scp").values()
        elif (data_dir / "wav.scp").is_file():
            wavs = read_kaldi_map(data_dir / "wav.scp")
            paths += [wavs[u] for u, t in tasks.items() if _needs_tokens(t) and u in wavs]
    paths = sorted(set(paths))[:max_utts]
    if not paths:
        raise ValueError(f"no speech-output audio found in {list(map(str, data_dirs))}")
    tokenizer = StandInSpeechTokenizer.train(paths, vocab_size=vocab_size, seed=seed)
    Path(out_file).parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(out_file)
    return tokenizer
