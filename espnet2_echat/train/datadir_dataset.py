"""An ESPnet dataset over whole data dirs in the format of docs/data_dir.md.

ESPnet's ``ESPnetDataset`` needs every listed file to hold every utterance. Speech-LLM
data dirs do not: optional label files cover subsets, and text-input tasks (T2T, TTS)
have no ``wav.scp``. This dataset reads each dir with ESPnet's own readers and gives an
utterance only the files that hold it. Utterance ids are ``<set name>/<uttid>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Tuple

import numpy as np
import soundfile
from espnet2.fileio.read_text import read_2columns_text
from espnet2.fileio.sound_scp import SoundScpReader
from espnet2.train.dataset import AbsDataset

from espnet2_echat.data.datadir import DataDirError, validate_data_dir
from espnet2_echat.data.task_registry import SAMPLE_FILES
from espnet2_echat.train.encoder_cache import cacheable, read_cache_scp

class DataDirDataset(AbsDataset):
    """Samples of several data dirs, validated before use.

    Args:
        data_dirs: ``{set name: data dir}``.
        preprocess: ESPnet preprocess function ``(uid, data) -> arrays``.
        speech_token_vocab: K, the valid speech-token range for validation.
        fs: the sampling rate every ``wav.scp`` entry must have.
        encoder_cache: the training's encoder fingerprint
            (``train.encoder_cache.encoder_fingerprint``) to read the dumped encoder outputs
            of every cacheable dir as ``speech_enc`` instead of its audio; None: audio.
    """

    def __init__(
        self,
        data_dirs: Mapping[str, Path],
        preprocess: Optional[Callable] = None,
        speech_token_vocab: int = 4096,
        fs: int = 16000,
        encoder_cache: Optional[Mapping] = None,
    ):
        self.preprocess = preprocess
        self.fs = fs
        self.encoder_out: Dict[str, Dict[str, str]] = {}
        self.texts: Dict[str, Dict[str, Dict[str, str]]] = {}
        self.audio: Dict[str, SoundScpReader] = {}
        self.lengths: Dict[str, Dict[str, int]] = {}
        self.dirs = {name: Path(d) for name, d in data_dirs.items()}
        for name, d in self.dirs.items():
            issues = validate_data_dir(d, speech_token_vocab=speech_token_vocab, check_audio=False)
            if issues:
                raise DataDirError(issues)
            self.texts[name] = {
                f: read_2columns_text(d / f)
                for f in SAMPLE_FILES
                if f != "wav.scp" and (d / f).is_file()
            }
            if (d / "wav.scp").is_file():
                self.audio[name] = SoundScpReader(d / "wav.scp", dtype="float32")
            if encoder_cache is not None and cacheable(d):
                self.encoder_out[name] = read_cache_scp(d, encoder_cache)
            if (d / "utt2num_samples").is_file():  # written by ESPnet's format_wav_scp.sh
                self.lengths[name] = {
                    k: int(v) for k, v in read_2columns_text(d / "utt2num_samples").items()
                }
        self._names = tuple(
            sorted(
                {SAMPLE_FILES[f] for files in self.texts.values() for f in files}
                | ({"speech"} if self.audio else set())
                | ({"speech_enc"} if self.encoder_out else set())
            )
        )

    def has_name(self, name) -> bool:
        return name in self._names

    def names(self) -> Tuple[str, ...]:
        return self._names

    def utterances(self, set_name: str):
        """Utterance ids of one set (the ``task`` file's order)."""
        return list(self.texts[set_name]["task"])

    def raw(self, uid: str, load_audio: bool = True) -> Dict[str, object]:
        """The sample before preprocessing: strings, and the waveform as float32."""
        set_name, utt = uid.split("/", 1)
        data: Dict[str, object] = {
            SAMPLE_FILES[f]: values[utt]
            for f, values in self.texts[set_name].items()
            if utt in values
        }
        reader = self.audio.get(set_name)
        cached = self.encoder_out.get(set_name, {})
        if load_audio and utt in cached:  # the frozen encoder's output instead of the audio
            data["speech_enc"] = np.load(cached[utt]).astype(np.float32)
        elif load_audio and reader is not None and utt in reader.data:
            rate, wav = reader[utt]
            if rate != self.fs:
                raise ValueError(
                    f"{self.dirs[set_name]}/wav.scp: {utt} is {rate} Hz, expected {self.fs} Hz"
                )
            # multi-channel audio is averaged to mono (docs/data_pipeline.md#osum-formats)
            if wav.ndim == 2:
                wav = wav.mean(axis=1)
            data["speech"] = wav
        return data

    def num_samples(self, uid: str) -> Optional[int]:
        """Audio length in samples (utt2num_samples, else the file header); None without audio."""
        set_name, utt = uid.split("/", 1)
        reader = self.audio.get(set_name)
        if reader is None or utt not in reader.data:
            return None
        if utt in self.lengths.get(set_name, {}):
            return self.lengths[set_name][utt]
        path = reader.data[utt]
        if Path(path).is_file():
            return soundfile.info(path).frames
        return len(reader[utt][1])

    def __getitem__(self, uid: str) -> Tuple[str, Dict[str, np.ndarray]]:
        data = self.raw(uid)
        if self.preprocess is not None:
            data = self.preprocess(uid.split("/", 1)[1], data)
        for k, v in data.items():
            if not isinstance(v, np.ndarray):
                raise TypeError(f"{uid}: {k} must be a numpy array after preprocessing")
        return uid, data

    def __len__(self) -> int:
        return sum(len(t["task"]) for t in self.texts.values())

    def __repr__(self) -> str:
        sets = ", ".join(f"{n}={d}" for n, d in self.dirs.items())
        return f"{self.__class__.__name__}({sets}, names={self._names})"
