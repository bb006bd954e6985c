#!/usr/bin/env python3
"""Make the embedded mini corpus: espeak-ng speech whose labels are true by construction.

Usage: ``python local/make_mini_corpus.py --out_dir DIR [--num_per_task N [N N]]
[--speakers_per_sentence 12] [--nj 2]
[--asterisk_utts 20]``

What it makes (all deterministic, 16 kHz 16-bit mono, no network):

* User turns: 48 English sentences (12 per emotion) spoken by 12 synthetic speakers,
  2 per (gender x age group). Gender and age come from espeak-ng voice variants with
  controlled pitch range and formant scaling (children: high pitch, scaled formants,
  10 % faster; elderly: low-ish pitch, jitter ("flutter") and roughness, 15 % slower).
  Emotion is a *prosodic proxy* (rate, pitch, amplitude and pitch range per emotion,
  offline_assets.md 2.2): the labels are what was asked of the synthesiser, not acted
  emotion.
* Sound events: some user turns start with a synthesised event. ``<COUGH>`` is two
  band-passed noise bursts with a sharp attack; ``<SIGH>`` is a slow, low-passed breath
  noise; ``<LAUGHTER>`` is the speaker's own voice saying "ha ha ha ha" fast and high.
  Turns without one are ``<OTHER>``.
* Replies: templated by the user's emotion (-> reply emotion, docs/labels.md#tag-think) and age
  group, spoken by one assistant voice with the reply emotion's prosody; they are the targets of
  S2S (speech tokens come later from ``extract_speech_tokens``) and the TTS set.
* Data dirs ``{train,dev,test}_{asr,emotion,gender,age,event,tts,s2t,s2t_tag_think,
  s2t_language_think,s2s,s2s_tag_think,s2s_language_think,t2t,multiturn}``, and
  ``test_asterisk_asr``: real recorded English prompts (``local/asterisk.py``).
  Sentences 0-7 of each emotion are train, 8-9 dev, 10-11 test, so no user sentence
  (nor its reply) is shared between train and test.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import random
import shutil
import subprocess
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mini_corpus_text import (  # noqa: E402
    SENTENCES,
    arithmetic_pairs,
    make_language_think,
    make_reply,
    read_sentences,
)

from prep_common import record_role, role_of_split  # noqa: E402
from espnet2_echat.data.audio import resample, write_pcm16  # noqa: E402
from espnet2_echat.data.cot import build_tag_think  # noqa: E402
from espnet2_echat.data.datadir import validate_data_dir, write_data_dir  # noqa: E402
from espnet2_echat.data.task_registry import DATA_SETS  # noqa: E402

FS = 16000
ESPEAK_FS = 22050
SPLIT_OF_INDEX = ["train"] * 8 + ["dev"] * 2 + ["test"] * 2
SPEAKERS_PER_SENTENCE = {"train": 3, "dev": 2, "test": 3}
DEFAULT_NUM_PER_TASK = {"train": 20, "dev": 6, "test": 20}

# Custom espeak-ng voice variants (copied into a private espeak-ng-data tree).
CUSTOM_VARIANTS = {
    "echat_childm": "gender male 10\npitch 220 300\n"
    + "".join(f"formant {i} {f} 100 100\n" for i, f in enumerate([110, 112, 115, 118, 118, 118])),
    "echat_childf": "gender female 10\npitch 240 330\n"
    + "".join(f"formant {i} {f} 100 100\n" for i, f in enumerate([115, 118, 122, 125, 125, 125])),
    "echat_elderm": "gender male 75\npitch 72 100\nflutter 28\nroughness 6\n",
    "echat_elderf": "gender female 75\npitch 150 205\nflutter 28\nroughness 6\n",
}


@dataclass(frozen=True)
class Speaker:
    """A synthetic speaker: labels, espeak-ng variant and a pitch offset."""

    spk: str
    gender: str
    age: str
    variant: str
    pitch_offset: int = 0


SPEAKERS: Tuple[Speaker, ...] = (
    Speaker("ma1", "<MALE>", "<ADULT>", "m3"),
    Speaker("fa1", "<FEMALE>", "<ADULT>", "f2"),
    Speaker("mc1", "<MALE>", "<CHILD>", "echat_childm"),
    Speaker("fc1", "<FEMALE>", "<CHILD>", "echat_childf"),
    Speaker("mo1", "<MALE>", "<OLD>", "echat_elderm"),
    Speaker("fo1", "<FEMALE>", "<OLD>", "echat_elderf"),
    Speaker("ma2", "<MALE>", "<ADULT>", "m7"),
    Speaker("fa2", "<FEMALE>", "<ADULT>", "f3"),
    Speaker("mc2", "<MALE>", "<CHILD>", "echat_childm", 10),
    Speaker("fc2", "<FEMALE>", "<CHILD>", "echat_childf", -8),
    Speaker("mo2", "<MALE>", "<OLD>", "croak"),
    Speaker("fo2", "<FEMALE>", "<OLD>", "grandma"),
)
ASSISTANT = Speaker("asst", "<FEMALE>", "<ADULT>", "f4")
AGE_SPEED = {"<CHILD>": 1.1, "<ADULT>": 1.0, "<OLD>": 0.85}

# Prosody per emotion: (words per minute, pitch 0-99, amplitude, SSML pitch range).
PROSODY: Dict[str, Tuple[int, int, int, str]] = {
    "<NEUTRAL>": (165, 50, 70, "medium"),
    "<HAPPY>": (185, 70, 85, "x-high"),
    "<SAD>": (120, 30, 42, "x-low"),
    "<ANGRY>": (200, 58, 125, "medium"),
    # reply emotions of the assistant
    "<开心>": (180, 65, 80, "x-high"),
    "<安慰鼓励>": (140, 42, 60, "low"),
    "<抱歉>": (150, 45, 65, "low"),
    "<中立>": (165, 50, 70, "medium"),
}
EMOTION_SHORT = {"<HAPPY>": "hap", "<SAD>": "sad", "<ANGRY>": "ang", "<NEUTRAL>": "neu"}

# (set-name suffix, task tag) of every data dir, from the task registry.
TASKS: Tuple[Tuple[str, str], ...] = tuple((s.suffix, s.tag) for s in DATA_SETS)
# The dirs that read-speech turns (no reply) join: transcript and labels only.
READ_TASKS = ("asr", "gender", "age", "emotion", "event")


@dataclass(frozen=True)
class UserTurn:
    """One spoken user turn with its labels and the assistant's reply."""

    uid: str
    split: str
    speaker: Speaker
    emotion: str
    event: str
    text: str
    topic: str
    reply_emotion: str
    reply: str


@dataclass(frozen=True)
class SynthJob:
    """One wav to synthesise."""

    path: str
    text: str
    variant: str
    speed: int
    pitch: int
    amplitude: int
    pitch_range: str
    event: str = "<OTHER>"


def plan_user_turns(speakers_per_sentence: Optional[int] = None) -> List[UserTurn]:
    """All user turns of all splits, in a fixed order.

    ``speakers_per_sentence``: how many of the 12 speakers say each sentence, in every split
    (default: train 3, dev 2, test 3); 12 gives every (sentence, speaker) pair.
    """
    if speakers_per_sentence is not None and not 1 <= speakers_per_sentence <= len(SPEAKERS):
        raise ValueError(
            f"speakers_per_sentence must be 1..{len(SPEAKERS)}, got {speakers_per_sentence}"
        )
    turns: List[UserTurn] = []
    counters = {split: 0 for split in SPEAKERS_PER_SENTENCE}
    for emotion, sentences in SENTENCES.items():
        for k, (text, topic) in enumerate(sentences):
            split = SPLIT_OF_INDEX[k]
            for _ in range(speakers_per_sentence or SPEAKERS_PER_SENTENCE[split]):
                i = counters[split]
                counters[split] += 1
                speaker = SPEAKERS[i % len(SPEAKERS)]
                event = _event_for(i, emotion)
                reply_emotion, reply = make_reply(topic, emotion, speaker.age)
                uid = f"{speaker.spk}-{EMOTION_SHORT[emotion]}{k:02d}"
                turns.append(
                    UserTurn(uid, split, speaker, emotion, event, text, topic, reply_emotion, reply)
                )
    return turns


def plan_read_turns(num_train: int, num_test: int) -> List[UserTurn]:
    """Read-speech turns: sentences of the grammar (``read_sentences``), no reply.

    The first ``num_test`` sentences are test, the next ``num_train`` train, so no read sentence
    is in both; speakers, emotions (prosody) and events rotate over the turns. Each split's
    sentences are shuffled first (seeded): the grammar's 4 templates take turns
    (``read_sentences``) as the 12 speakers do, so in grammar order the template told the
    speaker's gender (a word-only predictor read it at 93 %) and a model learnt gender from
    the words, which fails on the test turns.
    """
    sentences = read_sentences()
    if num_train < 0 or num_test < 0 or num_train + num_test > len(sentences):
        raise ValueError(
            f"read sentences: 0 <= train + test <= {len(sentences)}, got {num_train} + {num_test}"
        )
    rng = random.Random(29)
    test, train = sentences[:num_test], sentences[num_test : num_test + num_train]
    rng.shuffle(test)
    rng.shuffle(train)
    emotions = list(SENTENCES)
    turns = []
    for i, text in enumerate(test + train):
        split = "test" if i < num_test else "train"
        speaker = SPEAKERS[i % len(SPEAKERS)]
        # emotion steps every 12 turns so each speaker says every emotion
        emotion = emotions[(i // len(SPEAKERS)) % len(emotions)]
        uid = f"{speaker.spk}-read{i:04d}"
        turns.append(
            UserTurn(uid, split, speaker, emotion, _event_for(i, emotion), text, "", "", "")
        )
    return turns


def _event_for(index: int, emotion: str) -> str:
    """The sound event of the ``index``-th turn of a split (speaker ``index % 12``).

    The phase moves on by one every 12 turns and again every 48, so a speaker carries every
    event kind, each with every emotion: the event cannot be told from the voice alone.
    """
    n = len(SPEAKERS)
    phase = (index + index // n + index // (4 * n)) % 4
    if phase == 1:
        return "<COUGH>"
    if phase == 3:
        return {"<HAPPY>": "<LAUGHTER>", "<SAD>": "<SIGH>"}.get(emotion, "<OTHER>")
    return "<OTHER>"


def _interleave(turns: List[UserTurn], key: str = "emotion") -> List[UserTurn]:
    """Round-robin over the values of a label so that any window of turns is balanced."""
    values = list(dict.fromkeys(getattr(t, key) for t in turns))
    groups = [[t for t in turns if getattr(t, key) == v] for v in values]
    out = []
    for i in range(max(len(g) for g in groups)):
        out += [g[i] for g in groups if i < len(g)]
    return out


def _select(items: Sequence, n: int, task_index: int) -> List:
    """A deterministic, task-dependent rotation of ``items`` (n of them at most)."""
    if not items:
        return []
    start = (task_index * 7) % len(items)
    rotated = list(items[start:]) + list(items[:start])
    return rotated[: min(n, len(items))]


def _user_job(turn: UserTurn, wav_dir: Path) -> SynthJob:
    speed, pitch, amp, rng = PROSODY[turn.emotion]
    spk = turn.speaker
    return SynthJob(
        path=str(wav_dir / f"{turn.uid}.wav"),
        text=turn.text,
        variant=spk.variant,
        speed=int(round(speed * AGE_SPEED[spk.age])),
        pitch=int(np.clip(pitch + spk.pitch_offset, 0, 99)),
        amplitude=amp,
        pitch_range=rng,
        event=turn.event,
    )


def _reply_job(turn: UserTurn, wav_dir: Path) -> SynthJob:
    speed, pitch, amp, rng = PROSODY[turn.reply_emotion]
    return SynthJob(
        str(wav_dir / f"{turn.uid}-reply.wav"),
        turn.reply,
        ASSISTANT.variant,
        speed,
        pitch,
        amp,
        rng,
    )


def _labels(turn: UserTurn) -> Dict[str, str]:
    return {
        "utt2gender": turn.speaker.gender,
        "utt2age": turn.speaker.age,
        "utt2emotion": turn.emotion,
        "utt2event": turn.event,
    }


def build_task_dir(
    name: str, task: str, turns: List[UserTurn], wav_dir: Path, t2t_pairs: List[Tuple[str, str]]
) -> Tuple[Dict[str, Dict[str, str]], List[SynthJob]]:
    """Return ``({uttid: {file: value}}, synthesis jobs)`` of one task dir."""
    utts: Dict[str, Dict[str, str]] = {}
    jobs: List[SynthJob] = []
    if name == "t2t":
        for i, (question, reply) in enumerate(t2t_pairs):
            utts[f"t2t-{turns[0].split}{i:03d}"] = {
                "task": task,
                "question": question,
                "reply": reply,
            }
        return utts, jobs
    for j, turn in enumerate(turns):
        if name == "tts":
            reply_wav = _reply_job(turn, wav_dir)
            utts[f"asst-{turn.uid}-tts"] = {
                "task": task,
                "wav.scp": reply_wav.path,
                "utt2spk": ASSISTANT.spk,
                "text": turn.reply,
                "reply_emotion": turn.reply_emotion,
            }
            jobs.append(reply_wav)
            continue
        user_wav = _user_job(turn, wav_dir)
        record = {"task": task, "wav.scp": user_wav.path, "utt2spk": turn.speaker.spk}
        record["text"] = turn.text
        record.update(_labels(turn))
        jobs.append(user_wav)
        if name.startswith(("s2t", "s2s", "multiturn")):
            record["reply"] = turn.reply
            record["reply_emotion"] = turn.reply_emotion
        if name.startswith(("s2s", "multiturn")):
            reply_wav = _reply_job(turn, wav_dir)
            record["reply_wav.scp"] = reply_wav.path
            jobs.append(reply_wav)
        if name.endswith("tag_think"):
            record["think"] = build_tag_think(
                turn.text,
                turn.speaker.age,
                turn.speaker.gender,
                turn.emotion,
                turn.event,
                turn.reply_emotion,
            )
        elif name.endswith("language_think"):
            record["think"] = make_language_think(
                turn.text,
                turn.speaker.age,
                turn.speaker.gender,
                turn.emotion,
                turn.event,
                turn.reply_emotion,
            )
        if name == "multiturn":
            previous = turns[(j + 1) % len(turns)]
            prev_user, prev_reply = _user_job(previous, wav_dir), _reply_job(previous, wav_dir)
            jobs += [prev_user, prev_reply]
            record["history"] = json.dumps(
                [
                    {
                        "user_wav": prev_user.path,
                        "user_text": previous.text,
                        "reply": previous.reply,
                        "speech_token": [],
                        "reply_wav": prev_reply.path,
                    }
                ],
                ensure_ascii=False,
            )
        utts[f"{turn.uid}-{name}"] = record
    return utts, jobs


# ---------------------------------------------------------------- synthesis


def _espeak_data_dir(tmp: Path) -> Path:
    """A private espeak-ng data tree (symlinks) with the custom variants added.

    espeak-ng reads variants only from ``<data>/voices/!v``; rather than copying the
    13 MB system tree, every entry is symlinked and the variants dir is extended.
    """
    system = _system_espeak_data()
    root = tmp / "espeak-ng-data"
    (root / "voices" / "!v").mkdir(parents=True)
    for entry in system.iterdir():
        if entry.name != "voices":
            (root / entry.name).symlink_to(entry)
    for entry in (system / "voices").iterdir():
        if entry.name != "!v":
            (root / "voices" / entry.name).symlink_to(entry)
    for entry in (system / "voices" / "!v").iterdir():
        (root / "voices" / "!v" / entry.name).symlink_to(entry)
    for name, body in CUSTOM_VARIANTS.items():
        (root / "voices" / "!v" / name).write_text(f"language variant\nname {name}\n{body}")
    return tmp


def _system_espeak_data() -> Path:
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (Debian package espeak-ng; `make setup`)")
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True)
    path = Path(out.stdout.split("Data at:")[1].strip())
    if not (path / "voices" / "!v").is_dir():
        raise RuntimeError(f"espeak-ng data dir {path} has no voices/!v")
    return path


def _espeak(job: SynthJob, text: str, espeak_path: str, speed: int, pitch: int) -> np.ndarray:
    ssml = f'<speak><prosody range="{job.pitch_range}">{text}</prosody></speak>'
    cmd = [
        "espeak-ng",
        f"--path={espeak_path}",
        "-m",
        "-v",
        f"en-us+{job.variant}",
        "-s",
        str(speed),
        "-p",
        str(pitch),
        "-a",
        str(job.amplitude),
        "--stdout",
        ssml,
    ]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    # espeak-ng --stdout writes a 44-byte header with a placeholder size; skip it.
    pcm = np.frombuffer(out[44:], dtype="<i2").astype(np.float64) / 32768.0
    return resample(pcm, ESPEAK_FS, FS)


def _event_sound(event: str, job: SynthJob, espeak_path: str) -> np.ndarray:
    """A deterministic event sound at 16 kHz (empty for <OTHER>)."""
    rng = np.random.default_rng(zlib.crc32(Path(job.path).name.encode()))
    if event == "<COUGH>":
        sos = signal.butter(4, [300, 3000], btype="bandpass", fs=FS, output="sos")
        t = np.arange(int(0.18 * FS)) / FS
        burst = signal.sosfilt(sos, rng.standard_normal(t.size)) * np.exp(-t / 0.05)
        burst *= np.minimum(1.0, t / 0.005)
        burst *= 0.5 / (np.abs(burst).max() + 1e-9)
        gap = np.zeros(int(0.12 * FS))
        return np.concatenate([burst, gap, 0.8 * burst])
    if event == "<SIGH>":
        sos = signal.butter(4, 1200, btype="lowpass", fs=FS, output="sos")
        t = np.arange(int(0.9 * FS)) / FS
        noise = signal.sosfilt(sos, rng.standard_normal(t.size))
        env = np.minimum(1.0, t / 0.2) * np.exp(-np.maximum(0.0, t - 0.2) / 0.3)
        noise *= env
        return 0.15 * noise / (np.abs(noise).max() + 1e-9)
    if event == "<LAUGHTER>":
        return _espeak(job, "ha ha ha ha", espeak_path, speed=260, pitch=85)
    return np.zeros(0)


def synthesize(job_and_path: Tuple[SynthJob, str]) -> None:
    """Synthesise one job to a 16 kHz 16-bit wav (called in worker processes)."""
    job, espeak_path = job_and_path
    speech = _espeak(job, job.text, espeak_path, job.speed, job.pitch)
    event = _event_sound(job.event, job, espeak_path)
    if event.size:
        speech = np.concatenate([event, np.zeros(int(0.15 * FS)), speech])
    write_pcm16(job.path, speech, FS)


def run_jobs(jobs: List[SynthJob], nj: int) -> None:
    """Synthesise all distinct jobs with ``nj`` processes."""
    unique = {job.path: job for job in jobs}
    with tempfile.TemporaryDirectory(prefix="echat_espeak_") as tmp:
        espeak_path = str(_espeak_data_dir(Path(tmp)))
        work = [(job, espeak_path) for _, job in sorted(unique.items())]
        if nj > 1:
            with multiprocessing.get_context("fork").Pool(nj) as pool:
                pool.map(synthesize, work, chunksize=4)
        else:
            for item in work:
                synthesize(item)


# ---------------------------------------------------------------- main entry


def make_mini_corpus(
    out_dir: Path,
    num_per_task: Union[None, int, Sequence[int]] = None,
    nj: int = 2,
    asterisk_utts: int = 0,
    speakers_per_sentence: Optional[int] = None,
    read_sentences: Sequence[int] = (0, 0),
) -> List[Path]:
    """Write the mini corpus under ``out_dir``; return the data dirs made.

    ``num_per_task``: utterances per task dir, one number for every split or three (train,
    dev, test); ``speakers_per_sentence``: see :func:`plan_user_turns` (a larger corpus:
    12 speakers give 384 train, 96 dev and 96 test user turns).

    ``read_sentences``: ``(train, test)`` read-speech turns (``plan_read_turns``): the train
    ones join every ``train_`` ASR and label dir, the test ones make ``test_read_asr``.

    With ``asterisk_utts > 0`` the real-speech ASR test set ``test_asterisk_asr`` is added
    from the Debian package ``asterisk-core-sounds-en-wav`` (see ``local/asterisk.py``).
    """
    out_dir = Path(out_dir).resolve()
    turns = plan_user_turns(speakers_per_sentence)
    if isinstance(num_per_task, int):
        num_per_task = [num_per_task]
    if num_per_task is not None and len(num_per_task) == 1:
        num_per_task = list(num_per_task) * 3
    per_split = dict(zip(DEFAULT_NUM_PER_TASK, num_per_task or DEFAULT_NUM_PER_TASK.values()))
    if len(per_split) != 3:
        raise ValueError(f"num_per_task: one number or three (train dev test), got {num_per_task}")
    pairs = arithmetic_pairs()
    t2t_by_split = {
        "train": pairs[: len(pairs) * 7 // 10],
        "dev": pairs[len(pairs) * 7 // 10 : len(pairs) * 8 // 10],
        "test": pairs[len(pairs) * 8 // 10 :],
    }
    dirs: Dict[Path, Dict[str, Dict[str, str]]] = {}
    jobs: List[SynthJob] = []
    read_turns = plan_read_turns(*read_sentences)
    for split, n in per_split.items():
        split_turns = _interleave([t for t in turns if t.split == split])
        wav_dir = out_dir / "wav" / split
        wav_dir.mkdir(parents=True, exist_ok=True)
        sentence_pairs = [
            (t.text, make_reply(t.topic, t.emotion, "<ADULT>")[1]) for t in split_turns
        ]
        t2t = list(dict.fromkeys(sentence_pairs)) + t2t_by_split[split]
        for ti, (name, task) in enumerate(TASKS):
            if name == "event":
                chosen = _select(_interleave(split_turns, key="event"), n, 0)
            else:
                chosen = _select(split_turns, n, ti)
            if split == "train" and name in READ_TASKS:
                chosen = chosen + [t for t in read_turns if t.split == "train"]
            utts, task_jobs = build_task_dir(name, task, chosen, wav_dir, _select(t2t, n, ti))
            dirs[out_dir / f"{split}_{name}"] = utts
            jobs += task_jobs
    read_test = [t for t in read_turns if t.split == "test"]
    if read_test:
        wav_dir = out_dir / "wav" / "test"
        utts, read_jobs = build_task_dir("asr", dict(TASKS)["asr"], read_test, wav_dir, [])
        dirs[out_dir / "test_read_asr"] = utts
        jobs += read_jobs
    logging.info("synthesising %d wavs with %d processes", len({j.path for j in jobs}), nj)
    run_jobs(jobs, nj)
    for path, utts in dirs.items():
        write_data_dir(path, utts)
        issues = validate_data_dir(path, require_speech_tokens=False, expected_fs=FS)
        if issues:
            raise RuntimeError("\n".join(f"{path}/{i}" for i in issues))
        record_role(out_dir, path.name, role_of_split(path.name))
    made = sorted(dirs)
    if asterisk_utts:
        made.append(_asterisk_test_set(out_dir / "test_asterisk_asr", asterisk_utts))
    logging.info("wrote %d data dirs under %s", len(made), out_dir)
    return made


def _asterisk_test_set(data_dir: Path, num_utts: int) -> Path:
    import asterisk

    for path, package in (
        (asterisk.SOUNDS, "asterisk-core-sounds-en-wav"),
        (asterisk.TRANSCRIPTS, "asterisk-core-sounds-en"),
    ):
        if not path.exists():
            raise RuntimeError(
                f"{path} not found: apt-get install {package} (make setup does), "
                "or pass --asterisk_utts 0"
            )
    return asterisk.prepare(asterisk.SOUNDS, asterisk.TRANSCRIPTS, data_dir, num_utts)


def get_parser() -> argparse.ArgumentParser:
    """Return the argument parser."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out_dir", required=True, type=Path)
    parser.add_argument(
        "--num_per_task",
        "--num_per_split",
        dest="num_per_task",
        type=int,
        nargs="+",
        default=None,
        help="utterances per task dir: one number for every split, or three (train dev "
        "test) (default: 20 6 20)",
    )
    parser.add_argument(
        "--speakers_per_sentence",
        type=int,
        default=None,
        help="speakers (of 12) saying each sentence, every split (default: 3/2/3); 12 makes "
        "the larger corpus (96 test user turns, so up to 96 utterances per test task)",
    )
    parser.add_argument(
        "--read_sentences",
        type=int,
        nargs=2,
        default=(0, 0),
        metavar=("TRAIN", "TEST"),
        help="read-speech turns from the sentence grammar (mini_corpus_text.read_sentences): "
        "TRAIN join every train ASR and label dir, TEST make test_read_asr (default: 0 0)",
    )
    parser.add_argument("--nj", type=int, default=2, help="synthesis processes")
    parser.add_argument(
        "--asterisk_utts",
        type=int,
        default=20,
        help="real-speech ASR test set test_asterisk_asr (0: none)",
    )
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Command-line entry."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = get_parser().parse_args(argv)
    make_mini_corpus(
        args.out_dir,
        args.num_per_task,
        args.nj,
        args.asterisk_utts,
        args.speakers_per_sentence,
        args.read_sentences,
    )


if __name__ == "__main__":
    main()
