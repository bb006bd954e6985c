"""Frozen-encoder outputs computed once per utterance (``--encoder_cache true``).

When the Whisper encoder does not train (``trainable_parts`` without ``encoder``), its output
for an utterance never changes, so a real recipe computes it once (a dump stage, like ESPnet's
collect-stats/dump stages) and trains the adapter and the LLM on the stored outputs. Here:

* :func:`dump_encoder_outputs` runs the frontend (log-mel, no SpecAugment) and the encoder on
  every ``wav.scp`` entry of the given data dirs, one utterance at a time (no padding), and
  stores each output (frames x encoder width) as a ``.npy`` named by a hash of the wav file's
  bytes under one store dir (the same audio in several task dirs, e.g. one user turn copied
  into the ASR, gender and S2T dirs by the format stage, is encoded once); each data
  dir gets ``encoder_out.scp`` (``uttid path.npy``) and ``encoder_out.json`` (the
  fingerprint of the encoder that made it).
* :class:`espnet2_echat.train.datadir_dataset.DataDirDataset` then yields ``speech_enc``
  instead of ``speech`` for those dirs, after checking the fingerprint against the training
  config; ``EChatModel`` feeds ``speech_enc`` to the adapter directly.

Dirs whose samples carry history audio (multi-turn) are not cached: their past turns are
encoded in the model as before. SpecAugment, when the training frontend has it, does not
apply to cached outputs (the cache is what the encoder gives at evaluation).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Dict, Iterable, Mapping

import numpy as np
import soundfile
import torch

CACHE_SCP = "encoder_out.scp"
CACHE_INFO = "encoder_out.json"
DTYPES = ("float16", "float32")


def encoder_fingerprint(args) -> Dict[str, object]:
    """What the cached outputs depend on: the encoder class, its config and the weights it
    starts from (``encoder_init``). Stages that start from an earlier stage's model
    (``--init_param``) share the cache: the encoder is frozen in every stage that uses it, so
    its weights stay those of ``encoder_init``."""
    return {
        "encoder": args.encoder,
        "encoder_conf": dict(args.encoder_conf),
        "encoder_init": getattr(args, "encoder_init", None),
    }


def cacheable(data_dir: Path) -> bool:
    """A dir with audio input and no history audio."""
    return (data_dir / "wav.scp").is_file() and not (data_dir / "history").is_file()


@torch.no_grad()
def dump_encoder_outputs(
    frontend: torch.nn.Module,
    encoder: torch.nn.Module,
    data_dirs: Iterable[Path],
    store_dir: Path,
    fingerprint: Mapping[str, object],
    dtype: str = "float16",
) -> Dict[str, int]:
    """Encode every utterance of ``data_dirs`` once; returns ``{dir: utterances}``.

    Dirs whose ``encoder_out.json`` already holds ``fingerprint`` and whose listed files all
    exist are skipped (a dir whose store was removed is dumped again); dirs that are not
    :func:`cacheable` are left alone.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    frontend.eval()
    encoder.eval()
    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    info = dict(fingerprint, dtype=dtype)
    done: Dict[str, int] = {}
    for d in map(Path, data_dirs):
        if not cacheable(d):
            logging.info(f"{d}: no wav.scp or multi-turn history, not cached")
            continue
        if _complete(d, info):
            logging.info(f"{d}: encoder outputs already dumped")
            continue
        lines = []
        for line in (d / "wav.scp").read_text(encoding="utf-8").splitlines():
            utt, path = line.split(maxsplit=1)
            out = store_dir / (audio_digest(path) + ".npy")
            if not out.is_file():
                np.save(out, encode_wav(frontend, encoder, path, utt, d).astype(dtype))
            lines.append(f"{utt} {out.resolve()}\n")
        (d / CACHE_SCP).write_text("".join(lines), encoding="utf-8")
        (d / CACHE_INFO).write_text(json.dumps(info, sort_keys=True), encoding="utf-8")
        done[str(d)] = len(lines)
        logging.info(f"{d}: {len(lines)} encoder outputs -> {store_dir}")
    return done


def _complete(data_dir: Path, info: Mapping[str, object]) -> bool:
    """Whether ``data_dir`` holds a dump made with ``info`` whose files all still exist."""
    if not (data_dir / CACHE_INFO).is_file() or not (data_dir / CACHE_SCP).is_file():
        return False
    if json.loads((data_dir / CACHE_INFO).read_text()) != info:
        return False
    lines = (data_dir / CACHE_SCP).read_text(encoding="utf-8").splitlines()
    return all(Path(line.split(maxsplit=1)[1]).is_file() for line in lines)


def audio_digest(path: str) -> str:
    """SHA-1 of a wav file's bytes: the cache key of its encoder output."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


def encode_wav(frontend, encoder, path: str, utt: str, data_dir: Path) -> np.ndarray:
    """The encoder output (frames, width) of one 16 kHz wav file."""
    wav, rate = soundfile.read(path, dtype="float32")
    if rate != 16000:
        raise ValueError(f"{data_dir}/wav.scp: {utt} ({path}) is {rate} Hz, expected 16000 Hz")
    if wav.ndim == 2:
        wav = wav.mean(axis=1)
    speech = torch.from_numpy(wav)[None]
    feats, feats_lengths = frontend(speech, torch.tensor([speech.shape[1]]))
    dtype = next(encoder.parameters()).dtype
    enc, enc_lengths = encoder(feats.to(dtype), feats_lengths)
    return enc[0, : int(enc_lengths[0])].float().numpy()


def read_cache_scp(data_dir: Path, fingerprint: Mapping[str, object]) -> Dict[str, str]:
    """``{utt: npy path}`` of a dumped dir, after checking it was made by this encoder."""
    info_file = data_dir / CACHE_INFO
    if not (data_dir / CACHE_SCP).is_file() or not info_file.is_file():
        raise FileNotFoundError(
            f"{data_dir}: --encoder_cache true needs {CACHE_SCP} and {CACHE_INFO}; run "
            f"python -m espnet2_echat.bin.dump_encoder_outputs --config CONF --data_dir {data_dir}"
        )
    info = json.loads(info_file.read_text())
    made_by = {k: v for k, v in info.items() if k != "dtype"}
    if made_by != json.loads(json.dumps(dict(fingerprint))):
        raise ValueError(
            f"{info_file}: the encoder outputs were made by {made_by}, but this training "
            f"uses {dict(fingerprint)}; dump them again"
        )
    out = {}
    for line in (data_dir / CACHE_SCP).read_text(encoding="utf-8").splitlines():
        utt, path = line.split(maxsplit=1)
        out[utt] = path
    missing = [utt for utt, path in out.items() if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{data_dir}/{CACHE_SCP}: {len(missing)} of {len(out)} encoder outputs are gone "
            f"(first: {missing[0]} {out[missing[0]]}); dump them again (dump_encoder_outputs "
            f"recomputes the missing ones)"
        )
    return out
