"""Corpus preparation scripts in local/, each on a few files laid out as the corpus is."""

import csv
import gzip
import importlib.util
import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet2_echat.data.datadir import load_data_dir, read_kaldi_map, validate_data_dir

LOCAL = Path(__file__).resolve().parents[2] / "local"


def _script(name: str):
    if str(LOCAL) not in sys.path:
        sys.path.insert(0, str(LOCAL))
    spec = importlib.util.spec_from_file_location(f"local_{name}", LOCAL / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _audio(path: Path, fs: int = 16000, fmt: str = None, seconds: float = 0.2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * fs)) / fs
    soundfile.write(path, 0.2 * np.sin(2 * np.pi * 220 * t), fs, format=fmt)
    return path


def _files(d: Path) -> dict:
    return load_data_dir(d, require_speech_tokens=False)


def test_librispeech(tmp_path):
    root = tmp_path / "LibriSpeech"
    chap = root / "dev-clean" / "84" / "121123"
    _audio(chap / "84-121123-0000.flac", fmt="FLAC")
    _audio(chap / "84-121123-0001.flac", fmt="FLAC")
    (chap / "84-121123.trans.txt").write_text(
        "84-121123-0000 GO DO YOU HEAR\n84-121123-0001 BUT IN LESS\n"
    )
    (root / "SPEAKERS.TXT").write_text(
        ";ID |SEX| SUBSET |MINUTES| NAME\n84   | F | dev-clean | 8.02 | Christie Nowak\n"
    )
    _script("librispeech").main(
        ["--db_root", str(root), "--out_dir", str(tmp_path / "data"), "--subsets", "dev-clean"]
    )
    f = _files(tmp_path / "data" / "librispeech_dev_clean")
    assert f["text"] == {"84-121123-0000": "GO DO YOU HEAR", "84-121123-0001": "BUT IN LESS"}
    assert set(f["utt2gender"].values()) == {"<FEMALE>"} and set(f["utt2spk"].values()) == {"84"}


def test_aishell1(tmp_path):
    root = tmp_path / "aishell"
    for split, utt in (
        ("train", "BAC009S0002W0122"),
        ("dev", "BAC009S0724W0121"),
        ("test", "BAC009S0764W0121"),
    ):
        _audio(root / "data_aishell" / "wav" / split / utt[6:11] / f"{utt}.wav")
    _audio(root / "data_aishell" / "wav" / "train" / "S0002" / "BAC009S0002W0999.wav")  # no text
    t = root / "data_aishell" / "transcript" / "aishell_transcript_v0.8.txt"
    t.parent.mkdir(parents=True)
    t.write_text(
        "BAC009S0002W0122 而 对 楼市 成交 抑制 作用 最 大 的 限 购\n"
        "BAC009S0724W0121 甚至 出现 交易 几乎 停滞 的 情况\nBAC009S0764W0121 一二 线 城市\n",
        encoding="utf-8",
    )
    _script("aishell1").main(["--db_root", str(root), "--out_dir", str(tmp_path / "data")])
    f = _files(tmp_path / "data" / "aishell_train")
    assert f["text"] == {"BAC009S0002W0122": "而对楼市成交抑制作用最大的限购"}
    assert f["utt2spk"] == {"BAC009S0002W0122": "S0002"}
    assert _files(tmp_path / "data" / "aishell_test")["text"]["BAC009S0764W0121"] == "一二线城市"


def test_meld(tmp_path):
    root = tmp_path / "MELD.Raw"
    header = [
        "Sr No.",
        "Utterance",
        "Speaker",
        "Emotion",
        "Sentiment",
        "Dialogue_ID",
        "Utterance_ID",
    ]
    rows = {
        "train": [
            ("1", "Oh my God!", "Monica", "joy", "positive", "0", "0"),
            ("2", "Stop it.", "Ross Geller", "anger", "negative", "0", "1"),
        ],
        "dev": [("1", "Hi.", "Joey", "neutral", "neutral", "3", "2")],
        "test": [("1", "No way.", "Rachel", "surprise", "positive", "5", "0")],
    }
    root.mkdir()
    for split, (csv_name, clip_dir) in _script("meld").SPLITS.items():
        with open(root / csv_name, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            for r in rows[split]:
                w.writerow(r)
                _audio(root / clip_dir / f"dia{r[5]}_utt{r[6]}.wav")
                (root / clip_dir / f"dia{r[5]}_utt{r[6]}.mp4").write_bytes(b"")
    meld = _script("meld")
    meld.main(["--db_root", str(root), "--out_dir", str(tmp_path / "wav"), "--audio_ext", "wav"])
    f = _files(tmp_path / "wav" / "meld_train")
    assert f["utt2emotion"] == {
        "Monica-meld_train_dia0_utt0": "<HAPPY>",
        "RossGeller-meld_train_dia0_utt1": "<ANGRY>",
    }
    assert f["task"]["Monica-meld_train_dia0_utt0"] == "<TRANSCRIBE> <EMOTION>"
    meld.main(["--db_root", str(root), "--out_dir", str(tmp_path / "mp4"), "--task", "<EMOTION>"])
    wav = read_kaldi_map(tmp_path / "mp4" / "meld_test" / "wav.scp")["Rachel-meld_test_dia5_utt0"]
    assert (
        wav.startswith("ffmpeg ")
        and wav.endswith("-f wav - |")
        and "output_repeated_splits_test/dia5_utt0.mp4" in wav
    )


def test_vocalsound(tmp_path):
    root = tmp_path / "vocalsound"
    for name in ("f0003_0_cough", "f0003_1_laughter", "m0115_0_throatclearing", "m0200_0_sniff"):
        _audio(root / "audio_16k" / f"{name}.wav")
    (root / "meta").mkdir()
    (root / "meta" / "tr_meta.csv").write_text("f0003\nm0115\n")
    (root / "meta" / "val_meta.csv").write_text("m0200\n")
    (root / "meta" / "te_meta.csv").write_text("m0200\n")
    _script("vocalsound").main(["--db_root", str(root), "--out_dir", str(tmp_path / "data")])
    f = _files(tmp_path / "data" / "vocalsound_train")
    assert f["utt2event"] == {
        "f0003_0_cough": "<COUGH>",
        "f0003_1_laughter": "<LAUGHTER>",
        "m0115_0_throatclearing": "<THROAT_CLEARING>",
    }
    assert (
        f["utt2gender"]["m0115_0_throatclearing"] == "<MALE>"
        and f["task"]["f0003_0_cough"] == "<CAPTION>"
    )
    assert _files(tmp_path / "data" / "vocalsound_test")["utt2event"] == {
        "m0200_0_sniff": "<OTHER>"
    }


def test_commonvoice(tmp_path):
    lang = tmp_path / "cv" / "en"
    cols = [
        "client_id",
        "path",
        "sentence",
        "up_votes",
        "down_votes",
        "age",
        "gender",
        "accents",
        "locale",
        "segment",
    ]
    data = [
        (
            "a" * 64,
            "common_voice_en_1.mp3",
            "Hello there.",
            "2",
            "0",
            "teens",
            "female",
            "",
            "en",
            "",
        ),
        (
            "b" * 64,
            "common_voice_en_2.mp3",
            "Good day.",
            "2",
            "0",
            "sixties",
            "male_masculine",
            "",
            "en",
            "",
        ),
        ("c" * 64, "common_voice_en_3.mp3", "No labels.", "2", "0", "", "", "", "en", ""),
    ]
    lang.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        with open(lang / f"{split}.tsv", "w") as fh:
            fh.write("\t".join(cols) + "\n")
            for row in data:
                fh.write("\t".join(row) + "\n")
    for row in data:
        _audio(lang / "clips" / row[1], fs=48000, fmt="MP3")
    _script("commonvoice").main(
        ["--db_root", str(tmp_path / "cv"), "--out_dir", str(tmp_path / "data")]
    )
    f = _files(tmp_path / "data" / "commonvoice_en_dev")
    assert f["utt2age"] == {
        "a" * 16 + "-common_voice_en_1": "<CHILD>",
        "b" * 16 + "-common_voice_en_2": "<OLD>",
    }
    assert f["utt2gender"]["b" * 16 + "-common_voice_en_2"] == "<MALE>"
    assert set(f["task"].values()) == {"<TRANSCRIBE> <AGE> <GENDER>"}


def test_libritts(tmp_path):
    d = tmp_path / "LibriTTS_R" / "dev-clean" / "84" / "121123"
    _audio(d / "84_121123_000008_000000.wav", fs=24000)
    (d / "84_121123_000008_000000.normalized.txt").write_text("Go, do you hear?\n")
    (d / "84_121123_000008_000000.original.txt").write_text("GO, DO YOU HEAR?\n")
    _script("libritts").main(
        [
            "--db_root",
            str(tmp_path / "LibriTTS_R"),
            "--out_dir",
            str(tmp_path / "data"),
            "--subsets",
            "dev-clean",
        ]
    )
    f = _files(tmp_path / "data" / "libritts_dev_clean")
    assert f["text"] == {"84_121123_000008_000000": "Go, do you hear?"}
    assert f["task"]["84_121123_000008_000000"] == "<TEXT2TOKEN>"


def test_text_dialogue(tmp_path):
    root = tmp_path / "t2t"
    root.mkdir()
    (root / "alpaca_data.json").write_text(
        json.dumps(
            [
                {"instruction": "Give three tips.", "input": "", "output": "1. Eat.\n2. Sleep."},
                {"instruction": "Translate:", "input": "bonjour", "output": "hello"},
                {"instruction": "Empty", "input": "", "output": ""},
            ]
        )
    )
    (root / "sharegpt.jsonl").write_text(
        json.dumps(
            {
                "id": "x1",
                "conversations": [
                    {"from": "human", "value": "Hi"},
                    {"from": "gpt", "value": "Hello!"},
                    {"from": "human", "value": "Bye"},
                    {"from": "gpt", "value": "See you."},
                ],
            }
        )
        + "\n"
    )
    mod = _script("text_dialogue")
    mod.main(["--db_root", str(root), "--out_dir", str(tmp_path / "data")])
    f = _files(tmp_path / "data" / "t2t")
    assert f["question"] == {"t2t-0": "Give three tips.", "t2t-1": "Translate: bonjour"}
    assert f["reply"]["t2t-0"] == "1. Eat. 2. Sleep."
    mod.main(
        [
            "--db_root",
            str(root),
            "--out_dir",
            str(tmp_path / "data"),
            "--file",
            "sharegpt.jsonl",
            "--name",
            "sg",
        ]
    )
    assert _files(tmp_path / "data" / "sg")["reply"] == {"sg-x1_0": "Hello!", "sg-x1_2": "See you."}


def test_voicebench(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    soundfile.write(buf, np.zeros(2400), 24000, format="WAV")
    rows = [
        {
            "audio": {"bytes": buf.getvalue(), "path": "0.wav"},
            "prompt": "What is the capital\nof France?",
            "reference": "Paris",
        },
        {
            "audio": {"bytes": buf.getvalue(), "path": "1.wav"},
            "prompt": "Tell a joke.",
            "reference": None,
        },
    ]
    (tmp_path / "vb" / "sd-qa").mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist(rows), tmp_path / "vb" / "sd-qa" / "usa-00000-of-00001.parquet"
    )
    _script("voicebench").main(
        ["--db_root", str(tmp_path / "vb"), "--out_dir", str(tmp_path / "data")]
    )
    d = tmp_path / "data" / "voicebench_sd_qa_usa"
    assert validate_data_dir(d, require_targets=False, expected_fs=16000) == []
    text = read_kaldi_map(d / "text")
    assert list(text.values()) == ["What is the capital of France?", "Tell a joke."]
    assert list(read_kaldi_map(d / "reply").values()) == ["Paris"]
    assert soundfile.info(next(iter(read_kaldi_map(d / "wav.scp").values()))).samplerate == 16000


def test_seedtts_eval(tmp_path):
    en = tmp_path / "seedtts_testset" / "en"
    _audio(en / "prompt-wavs" / "common_voice_en_1.wav")
    _audio(en / "wavs" / "u1.wav")
    (en / "meta.lst").write_text(
        "u1|Prompt words.|prompt-wavs/common_voice_en_1.wav|Say this now.\n"
        "u2|Prompt words.|prompt-wavs/common_voice_en_1.wav|And this.\n"
    )
    _script("seedtts_eval").main(
        ["--db_root", str(tmp_path / "seedtts_testset"), "--out_dir", str(tmp_path / "data")]
    )
    d = tmp_path / "data" / "seedtts_en"
    assert read_kaldi_map(d / "text") == {"u1": "Say this now.", "u2": "And this."}
    assert sorted(read_kaldi_map(d / "wav.scp")) == ["u1"]
    assert read_kaldi_map(d / "prompt_text")["u2"] == "Prompt words."
    assert not (tmp_path / "data" / "seedtts_zh").exists()


def test_echat_shard_layout(tmp_path):
    root = tmp_path / "EChat-1500H"
    wav = _audio(tmp_path / "w.wav").read_bytes()
    extra = {
        "age": "<ADULT>",
        "gender": "<FEMALE>",
        "question": "I failed my exam.",
        "think_str": "She sounds sad.",
        "speech_token": [1, 2, 3],
    }
    (root / "shards").mkdir(parents=True)
    with tarfile.open(root / "shards" / "shard_000000000.tar", "w") as tar:
        for suffix, data in (
            ("txt", "Don't give up.".encode()),
            ("task", b"<S2TCHAT> <TEXT2TOKEN> <THINK>"),
            ("extra", json.dumps(extra).encode()),
            ("wav", wav),
        ):
            info = tarfile.TarInfo(f"k1.{suffix}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (root / "shards_list.txt").write_text("shards/shard_000000000.tar\n")
    rc = _script("echat").main(
        [
            "--db_root",
            str(root),
            "--out_dir",
            str(tmp_path / "data"),
            "--input",
            "shards_list.txt",
            "--data_type",
            "shard",
            "--name",
            "echat_train",
        ]
    )
    assert rc == 0
    f = _files(tmp_path / "data" / "echat_train")
    assert f["think"] == {"k1": "She sounds sad."} and f["text"] == {"k1": "I failed my exam."}
    assert f["speech_token"] == {"k1": "1 2 3"} and f["utt2gender"] == {"k1": "<FEMALE>"}


def test_asterisk_layout(tmp_path):
    sounds = tmp_path / "en_US_f_Allison"
    _audio(sounds / "activated.wav", fs=8000)
    _audio(sounds / "digits" / "0.wav", fs=8000)
    _audio(sounds / "beep.wav", fs=8000)
    with gzip.open(tmp_path / "core-sounds-en.txt.gz", "wt") as fh:
        fh.write(
            "; Core Asterisk Sounds in English\n\nactivated: Activated.\n"
            "beep: [this is a simple beep tone]\ndigits/0: zero\nmissing-file: Not here.\n"
        )
    _script("asterisk").main(
        [
            "--sounds_dir",
            str(sounds),
            "--transcripts",
            str(tmp_path / "core-sounds-en.txt.gz"),
            "--out_dir",
            str(tmp_path / "data"),
        ]
    )
    d = tmp_path / "data" / "asterisk_en"
    assert read_kaldi_map(d / "text") == {
        "allison-activated": "Activated.",
        "allison-digits_0": "zero",
    }
    info = soundfile.info(read_kaldi_map(d / "wav.scp")["allison-digits_0"])
    assert (info.samplerate, info.frames) == (16000, 3200)


@pytest.mark.skipif(
    not Path("/usr/share/asterisk/sounds/en_US_f_Allison/activated.wav").is_file(),
    reason="Debian package asterisk-core-sounds-en-wav is not installed (make setup)",
)
def test_asterisk_installed_package(tmp_path):
    _script("asterisk").main(["--out_dir", str(tmp_path), "--max_utts", "5"])
    assert len(read_kaldi_map(tmp_path / "asterisk_en" / "text")) == 5


def test_missing_db_root_is_clear(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LIBRISPEECH", raising=False)
    with pytest.raises(SystemExit):
        _script("librispeech").main(["--out_dir", str(tmp_path)])
    assert "set LIBRISPEECH in db.sh" in capsys.readouterr().err
