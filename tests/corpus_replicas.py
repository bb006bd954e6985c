"""Miniature replicas of each supported corpus as its release unpacks, made at test time.

Every replica follows its corpus's documented layout (folder and file naming, sample rate,
transcript files, CSV/TSV headers and quoting, flac/mp3/mp4 where the release has them),
with a few espeak-ng utterances per split. :func:`make_replicas` writes them all and
returns the ``db.sh`` variables pointing at them plus what the preparation must produce
(:class:`Expected`), written down here from the replica's own content, not from the
preparation code.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import soundfile
from scipy import signal


@dataclass
class Expected:
    """What one prepared data dir must hold."""

    role: str
    task: str
    texts: Dict[str, str] = field(default_factory=dict)  # utt -> text (all utterances)
    labels: Dict[str, Dict[str, str]] = field(default_factory=dict)  # file -> utt -> value
    num_utts: Optional[int] = None  # when texts is empty (e.g. VocalSound, T2T)

    @property
    def count(self) -> int:
        return self.num_utts if self.num_utts is not None else len(self.texts)

    def check(self, data_dir: Path) -> None:
        """Assert that a prepared data dir holds these utterances, texts and labels."""
        from espnet2_echat.data.datadir import read_kaldi_map

        task = read_kaldi_map(data_dir / "task")
        assert len(task) == self.count and set(task.values()) == {self.task}, data_dir
        if self.texts:
            assert read_kaldi_map(data_dir / "text") == self.texts, data_dir
        for file, values in self.labels.items():
            assert read_kaldi_map(data_dir / file) == values, (data_dir, file)


def espeak(text: str, fs: int, voice: str = "en-us") -> np.ndarray:
    """Speech for ``text`` from espeak-ng, mono float at ``fs`` Hz."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(["espeak-ng", "-v", voice, "-s", "200", "-w", tmp.name, text], check=True)
        wav, file_fs = soundfile.read(tmp.name, dtype="float64")
    g = np.gcd(file_fs, fs)
    return signal.resample_poly(wav, fs // g, file_fs // g)


def write_audio(path: Path, text: str, fs: int, fmt: str = "WAV", voice: str = "en-us") -> Path:
    """Synthesise ``text`` into ``path`` (WAV/FLAC/MP3) at ``fs`` Hz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, espeak(text, fs, voice), fs, format=fmt)
    return path


def write_mp4(path: Path, text: str) -> Path:
    """A small video clip with a 48 kHz stereo AAC track speaking ``text`` (as MELD's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        write_audio(Path(tmp.name), text, 48000)
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
             "color=c=black:s=32x32:r=5", "-i", tmp.name, "-shortest", "-c:v", "mpeg4",
             "-c:a", "aac", "-ac", "2", "-ar", "48000", str(path)],
            check=True,
        )
    return path


def librispeech(root: Path) -> Dict[str, Expected]:
    """``LibriSpeech/`` with four of its subsets as separate archives would leave them."""
    ls = root / "LibriSpeech"
    subsets = {
        "train-clean-100": ("103", "1240", "F", ["CHAPTER ONE MISSUS RACHEL", "WAS SURPRISED"]),
        "dev-clean": ("84", "121123", "F", ["GO DO YOU HEAR"]),
        "test-clean": ("1089", "134686", "M", ["HE HOPED THERE WOULD BE STEW"]),
        "test-other": ("1688", "142285", "M", ["THERE'S IRON THEY SAY"]),
    }
    out: Dict[str, Expected] = {}
    speakers = [";ID  |SEX| SUBSET           |MINUTES| NAME"]
    for subset, (spk, chap, sex, lines) in subsets.items():
        d = ls / subset / spk / chap
        trans = []
        texts = {}
        for i, text in enumerate(lines):
            utt = f"{spk}-{chap}-{i:04d}"
            write_audio(d / f"{utt}.flac", text.lower(), 16000, "FLAC")
            trans.append(f"{utt} {text}")
            texts[utt] = text
        (d / f"{spk}-{chap}.trans.txt").write_text("\n".join(trans) + "\n")
        speakers.append(f"{spk:<5}| {sex} | {subset:<16} | 25.00 | Reader {spk}")
        role = {"train": "train", "dev": "valid", "test": "test"}[subset.split("-")[0]]
        gender = {"F": "<FEMALE>", "M": "<MALE>"}[sex]
        out["librispeech_" + subset.replace("-", "_")] = Expected(
            role, "<TRANSCRIBE>", texts, {"utt2gender": {u: gender for u in texts}}
        )
    (ls / "SPEAKERS.TXT").write_text("\n".join(speakers) + "\n")
    for name in ("CHAPTERS.TXT", "BOOKS.TXT", "README.TXT", "LICENSE.TXT"):
        (ls / name).write_text("; replica\n")
    return out


def libritts(root: Path) -> Dict[str, Expected]:
    """``LibriTTS_R/`` (24 kHz wavs with .normalized.txt/.original.txt and chapter tsvs)."""
    lt = root / "LibriTTS_R"
    subsets = {
        "train-clean-100": ("19", "198", ["Northanger Abbey, by Jane Austen.", "It was late."]),
        "dev-clean": ("84", "121123", ["Go, do you hear?"]),
    }
    out = {}
    for subset, (spk, chap, lines) in subsets.items():
        d = lt / subset / spk / chap
        texts = {}
        rows = []
        for i, text in enumerate(lines):
            utt = f"{spk}_{chap}_{i:06d}_000000"
            write_audio(d / f"{utt}.wav", text, 24000)
            (d / f"{utt}.normalized.txt").write_text(text)
            (d / f"{utt}.original.txt").write_text(text.upper())
            rows.append(f"{utt}\t{text.upper()}\t{text}")
            texts[utt] = text
        (d / f"{spk}_{chap}.trans.tsv").write_text("\n".join(rows) + "\n")
        (d / f"{spk}_{chap}.book.tsv").write_text("\n".join(rows) + "\n")
        role = "train" if subset.startswith("train") else "valid"
        out["libritts_" + subset.replace("-", "_")] = Expected(role, "<TEXT2TOKEN>", texts)
    (lt / "speakers.tsv").write_text("READER\tGENDER\tSUBSET\tNAME\n19\tF\ttrain-clean-100\tKara\n")
    return out


def aishell(root: Path) -> Dict[str, Expected]:
    """``data_aishell/`` after extracting the per-speaker archives under ``wav/``."""
    base = root / "data_aishell"
    items = {
        "train": [("BAC009S0002W0122", "而 对 楼市 成交 抑制 作用 最 大"), ("BAC009S0002W0123", "限 购")],
        "dev": [("BAC009S0724W0121", "甚至 出现 交易 几乎 停滞 的 情况")],
        "test": [("BAC009S0764W0121", "一二 线 城市")],
    }
    lines, out = [], {}
    for split, utts in items.items():
        texts = {}
        for utt, words in utts:
            write_audio(base / "wav" / split / utt[6:11] / f"{utt}.wav", words, 16000, voice="cmn")
            lines.append(f"{utt} {words}")
            texts[utt] = words.replace(" ", "")
        role = {"train": "train", "dev": "valid", "test": "test"}[split]
        out[f"aishell_{split}"] = Expected(role, "<TRANSCRIBE>", texts)
    write_audio(base / "wav" / "train" / "S0002" / "BAC009S0002W0999.wav", "没有", 16000, voice="cmn")
    (base / "transcript").mkdir(parents=True)
    (base / "transcript" / "aishell_transcript_v0.8.txt").write_text("\n".join(lines) + "\n")
    return out


CV_COLUMNS = ["client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes",
              "down_votes", "age", "gender", "accents", "variant", "locale", "segment"]


def commonvoice(root: Path) -> Dict[str, Expected]:
    """``cv-corpus-17.0-2024-03-15/en/`` with 48 kHz mp3 clips and the v17 TSV header."""
    lang = root / "cv-corpus-17.0-2024-03-15" / "en"
    items = {
        "train": [("a1" * 32, 1, 'He said "no" twice.', "teens", "female_feminine"),
                  ("b2" * 32, 2, "It's a nice day.", "sixties", "male_masculine"),
                  ("c3" * 32, 3, "Nobody labelled me.", "", "")],
        "dev": [("d4" * 32, 4, "Good morning.", "fourties", "male")],
        "test": [("e5" * 32, 5, "See you, then.", "twenties", "female")],
    }
    ages = {"teens": "<CHILD>", "sixties": "<OLD>", "fourties": "<ADULT>", "twenties": "<ADULT>"}
    out = {}
    for split, rows in items.items():
        lines = ["\t".join(CV_COLUMNS)]
        exp = Expected({"train": "train", "dev": "valid", "test": "test"}[split],
                       "<TRANSCRIBE> <AGE> <GENDER>", labels={"utt2age": {}, "utt2gender": {}})
        for client, n, text, age, gender in rows:
            clip = f"common_voice_en_{n}.mp3"
            write_audio(lang / "clips" / clip, text, 48000, "MP3")
            lines.append("\t".join([client, clip, f"s{n}", text, "", "2", "0", age, gender,
                                    "", "", "en", ""]))
            if age:
                utt = f"{client[:16]}-common_voice_en_{n}"
                exp.texts[utt] = text
                exp.labels["utt2age"][utt] = ages[age]
                exp.labels["utt2gender"][utt] = "<FEMALE>" if gender.startswith("f") else "<MALE>"
        (lang / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        out[f"commonvoice_en_{split}"] = exp
    (lang / "validated.tsv").write_text("\t".join(CV_COLUMNS) + "\n")
    return out


MELD_HEADER = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID",
               "Utterance_ID", "Season", "Episode", "StartTime", "EndTime"]


def meld(root: Path) -> Dict[str, Expected]:
    """``MELD.Raw/`` with its three csvs (quoted fields) and extracted mp4 clip folders."""
    base = root / "MELD.Raw"
    items = {
        "train": ("train_sent_emo.csv", "train_splits",
                  [("Oh my God, he's lost it.", "Monica", "joy", 0, 0, True),
                   ('Stop saying "fine".', "Ross Geller", "anger", 0, 1, True),
                   ("Missing clip.", "Joey", "neutral", 125, 3, False)]),
        "dev": ("dev_sent_emo.csv", "dev_splits_complete", [("Hi.", "Joey", "neutral", 3, 2, True)]),
        "test": ("test_sent_emo.csv", "output_repeated_splits_test",
                 [("No way!", "Rachel", "surprise", 5, 0, True)]),
    }
    emo = {"joy": "<HAPPY>", "anger": "<ANGRY>", "neutral": "<NEUTRAL>", "surprise": "<SURPRISE>"}
    out = {}
    base.mkdir(parents=True)
    for split, (csv_name, clip_dir, rows) in items.items():
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(MELD_HEADER)
        exp = Expected({"train": "train", "dev": "valid", "test": "test"}[split],
                       "<TRANSCRIBE> <EMOTION>", labels={"utt2emotion": {}})
        for i, (text, spk, emotion, dia, utt_n, has_clip) in enumerate(rows, 1):
            w.writerow([i, text, spk, emotion, "neutral", dia, utt_n, 3, 19,
                        "00:14:15,055", "00:14:17,891"])
            if has_clip:
                write_mp4(base / clip_dir / f"dia{dia}_utt{utt_n}.mp4", text)
                utt = f"{spk.replace(' ', '')}-meld_{split}_dia{dia}_utt{utt_n}"
                exp.texts[utt] = text
                exp.labels["utt2emotion"][utt] = emo[emotion]
        (base / csv_name).write_text(buf.getvalue(), encoding="utf-8")
        out[f"meld_{split}"] = exp
    return out


def vocalsound(root: Path) -> Dict[str, Expected]:
    """``vs_release_16k/`` with ``audio_16k/<spk>_<n>_<label>.wav`` and ``meta/*_meta.csv``."""
    base = root / "vs_release_16k"
    files = {"f0003_0_cough": "cough cough", "f0003_1_laughter": "ha ha ha ha",
             "m0115_0_throatclearing": "ahem", "m0200_0_sniff": "sniff", "f0300_0_sigh": "hhaaa"}
    for name, sound in files.items():
        write_audio(base / "audio_16k" / f"{name}.wav", sound, 16000)
    (base / "meta").mkdir()
    (base / "meta" / "tr_meta.csv").write_text("f0003,Female,25,US\nm0115,Male,40,UK\n")
    (base / "meta" / "val_meta.csv").write_text("m0200,Male,30,US\n")
    (base / "meta" / "te_meta.csv").write_text("f0300,Female,61,CN\n")
    return {
        "vocalsound_train": Expected("train", "<CAPTION>", labels={"utt2event": {
            "f0003_0_cough": "<COUGH>", "f0003_1_laughter": "<LAUGHTER>",
            "m0115_0_throatclearing": "<THROAT_CLEARING>"}}, num_utts=3),
        "vocalsound_dev": Expected("valid", "<CAPTION>", labels={"utt2event": {
            "m0200_0_sniff": "<OTHER>"}}, num_utts=1),
        "vocalsound_test": Expected("test", "<CAPTION>", labels={"utt2event": {
            "f0300_0_sigh": "<SIGH>"}}, num_utts=1),
    }


def seedtts_eval(root: Path) -> Dict[str, Expected]:
    """``seedtts_testset/en`` with ``meta.lst``, ``prompt-wavs/`` and one ground-truth wav."""
    en = root / "seedtts_testset" / "en"
    write_audio(en / "prompt-wavs" / "common_voice_en_10119832.wav", "Prompt words here.", 16000)
    write_audio(en / "wavs" / "u1.wav", "Say this now.", 16000)
    (en / "meta.lst").write_text(
        "u1|Prompt words here.|prompt-wavs/common_voice_en_10119832.wav|Say this now.\n"
        "u2|Prompt words here.|prompt-wavs/common_voice_en_10119832.wav|And this, too.\n"
    )
    return {"seedtts_en": Expected("test", "<TEXT2TOKEN>", {"u1": "Say this now.",
                                                            "u2": "And this, too."})}


def voicebench(root: Path) -> Dict[str, Expected]:
    """``hlt-lab/voicebench`` as downloaded: ``<subset>/<split>-00000-of-00001.parquet``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def rows(prompts, refs):
        out = []
        for i, (prompt, ref) in enumerate(zip(prompts, refs)):
            buf = io.BytesIO()
            soundfile.write(buf, espeak(prompt, 24000), 24000, format="WAV")
            row = {"audio": {"bytes": buf.getvalue(), "path": f"{i}.wav"}, "prompt": prompt}
            if ref is not None:
                row["reference"] = ref
            out.append(row)
        return out

    base = root / "voicebench"
    (base / "sd-qa").mkdir(parents=True)
    (base / "alpacaeval").mkdir()
    pq.write_table(pa.Table.from_pylist(rows(["What is the capital of France?"], ["Paris"])),
                   base / "sd-qa" / "usa-00000-of-00001.parquet")
    pq.write_table(pa.Table.from_pylist(rows(["Tell me a joke.", "Name a color."], [None, None])),
                   base / "alpacaeval" / "test-00000-of-00001.parquet")
    return {
        "voicebench_sd_qa_usa": Expected("test", "<S2TCHAT>", {
            "voicebench_sd_qa_usa-0000000": "What is the capital of France?"}),
        "voicebench_alpacaeval": Expected("test", "<S2TCHAT>", {
            "voicebench_alpacaeval-0000000": "Tell me a joke.",
            "voicebench_alpacaeval-0000001": "Name a color."}),
    }


def text_dialogue(root: Path) -> Dict[str, Expected]:
    """Stanford Alpaca's ``alpaca_data.json``."""
    base = root / "alpaca"
    base.mkdir()
    items = [{"instruction": "Give three tips.", "input": "", "output": "1. Eat.\n2. Sleep."},
             {"instruction": "Translate:", "input": "bonjour", "output": "hello"},
             {"instruction": "Name a fruit.", "input": "", "output": "An apple."},
             {"instruction": "Empty", "input": "", "output": ""}]
    (base / "alpaca_data.json").write_text(json.dumps(items, indent=4))
    return {"t2t": Expected("train", "<TEXT2TEXT>", labels={"question": {
        "t2t-0": "Give three tips.", "t2t-1": "Translate: bonjour", "t2t-2": "Name a fruit."}},
        num_utts=3)}


def echat(root: Path) -> Dict[str, Expected]:
    """OSUM-EChat raw lists (docs/data_pipeline.md#osum-formats):
    ``EChat-1500H/train/data.list`` and an eval list."""
    out = {}
    for folder, role, name in (("EChat-1500H/train", "train", "echat_echat_1500h_train"),
                               ("EChat-eval", "test", "echat_echat_eval")):
        d = root / "EChat" / folder
        lines, texts = [], {}
        for i, (question, reply) in enumerate([("I failed my exam.", "Don't give up."),
                                               ("I got the job!", "Congratulations!")]):
            key = f"{name}_{i}"
            write_audio(d / "wavs" / f"{key}.wav", question, 16000)
            extra = {"question": question, "emotion": "<SAD>" if i == 0 else "<HAPPY>"}
            lines.append(json.dumps({"key": key, "wav": f"wavs/{key}.wav", "txt": reply,
                                     "task": "<S2TCHAT>", "extra": extra}, ensure_ascii=False))
            texts[key] = reply
        (d / "data.list").write_text("\n".join(lines) + "\n")
        out[name] = Expected(role, "<S2TCHAT>", labels={"reply": texts}, num_utts=len(texts))
    return out


BUILDERS = {
    "LIBRISPEECH": (librispeech, ""),
    "LIBRITTS": (libritts, ""),
    "AISHELL": (aishell, ""),
    "COMMONVOICE": (commonvoice, ""),
    "MELD": (meld, ""),
    "VOCALSOUND": (vocalsound, ""),
    "SEEDTTS_EVAL": (seedtts_eval, ""),
    "VOICEBENCH": (voicebench, "voicebench"),
    "TEXT_DIALOGUE": (text_dialogue, "alpaca"),
    "ECHAT": (echat, "EChat"),
}


def make_replicas(root: Path, only: Tuple[str, ...] = ()) -> Tuple[Dict[str, str], Dict[str, Expected]]:
    """Write every replica (or those named in ``only``) under ``root``.

    Returns ``({db.sh variable: corpus root}, {data dir name: Expected})``. Each corpus
    root is the folder the user would point its ``db.sh`` variable at; some are the
    folder holding the release folder (as ESPnet's ``downloads``), some the release
    folder itself, so that both conventions are exercised.
    """
    if not shutil.which("espeak-ng"):
        raise RuntimeError("espeak-ng is needed for the corpus replicas (apt-get install espeak-ng)")
    env, expected = {}, {}
    for var, (build, sub) in BUILDERS.items():
        if only and var not in only:
            continue
        corpus_root = Path(root) / var.lower()
        corpus_root.mkdir(parents=True, exist_ok=True)
        expected.update(build(corpus_root))
        env[var] = str(corpus_root / sub) if sub else str(corpus_root)
    return env, expected
