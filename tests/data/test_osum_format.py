"""OSUM raw / shard / combine formats <-> data dirs, round trips and bad input."""

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet2_echat.data.cot import build_tag_think
from espnet2_echat.data.datadir import load_data_dir, read_kaldi_map, write_data_dir
from espnet2_echat.data.osum_format import datadir_to_osum, osum_to_datadir

FS = 16000


def _wav(path: Path, freq: float) -> str:
    t = np.arange(int(0.3 * FS)) / FS
    soundfile.write(path, 0.2 * np.sin(2 * np.pi * freq * t), FS, subtype="PCM_16")
    return str(path)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    w = tmp_path / "wav"
    w.mkdir()
    think = build_tag_think(
        "my dog is sick", "<ADULT>", "<FEMALE>", "<SAD>", "<COUGH>", "<安慰鼓励>"
    )
    history = [
        {
            "user_wav": _wav(w / "h1.wav", 300),
            "user_text": "hi there",
            "reply": "Hello!",
            "speech_token": [3, 4],
            "reply_wav": _wav(w / "h1r.wav", 350),
        }
    ]
    utts = {
        "a-asr": {"task": "<TRANSCRIBE>", "text": "hello world"},
        "a-ag": {
            "task": "<TRANSCRIBE> <AGE> <GENDER>",
            "text": "nice day",
            "utt2age": "<CHILD>",
            "utt2gender": "<MALE>",
        },
        "a-emo": {"task": "<EMOTION>", "text": "i won", "utt2emotion": "<HAPPY>"},
        "a-sttc": {"task": "<TRANSCRIBE> <S2TCHAT>", "text": "how are you", "reply": "Fine."},
        "b-s2s": {
            "task": "<S2TCHAT> <TEXT2TOKEN> <THINK>",
            "text": "my dog is sick",
            "reply": "I am so sorry.",
            "reply_emotion": "<安慰鼓励>",
            "think": think,
            "utt2age": "<ADULT>",
            "utt2gender": "<FEMALE>",
            "utt2emotion": "<SAD>",
            "utt2event": "<COUGH>",
            "speech_token": "1 2 3",
        },
        "b-s2t": {
            "task": "<S2TCHAT> <THINKER>",
            "text": "i am tired",
            "reply": "Take a rest.",
            "think": "She sounds tired and sad.",
        },
        "b-hist": {
            "task": "<S2TCHAT> <TEXT2TOKEN> <HISTORY>",
            "text": "and now?",
            "reply": "Now rest.",
            "speech_token": "5 6",
            "history": json.dumps(history),
        },
    }
    for i, (utt, rec) in enumerate(sorted(utts.items())):
        rec["wav.scp"] = _wav(w / f"{utt}.wav", 200 + 50 * i)
        rec["utt2spk"] = utt.split("-")[0]
    utts["b-s2s"]["reply_wav.scp"] = _wav(w / "b-s2s-reply.wav", 500)
    utts["c-t2t"] = {"task": "<TEXT2TEXT>", "question": "2+2?", "reply": "4."}
    utts["c-tts"] = {"task": "<TEXT2TOKEN>", "text": "Say this.", "speech_token": "7 8 9"}
    d = tmp_path / "data"
    write_data_dir(d, utts)
    return d


def _without_audio_paths(files: dict) -> dict:
    out = {k: v for k, v in files.items() if k not in ("wav.scp", "history")}
    out["history"] = {
        u: [{k: v for k, v in t.items() if k != "user_wav"} for t in json.loads(h)]
        for u, h in files["history"].items()
    }
    return out


def _audio(path: str) -> np.ndarray:
    return soundfile.read(path, dtype="int16")[0]


def test_raw_round_trip_is_exact(data_dir: Path, tmp_path: Path):
    list_file = datadir_to_osum([data_dir], "raw", tmp_path / "raw")
    samples = {json.loads(l)["key"]: json.loads(l) for l in list_file.read_text().splitlines()}
    # the reference's conventions (docs/tasks.md#layouts, docs/labels.md#tag-think,
    # docs/data_pipeline.md#osum-formats)
    assert samples["a-ag"]["txt"] == "nice day<CHILD><MALE>"
    assert samples["a-emo"]["txt"] == "<HAPPY>" and samples["a-emo"]["extra"]["q_txt"] == "i won"
    assert samples["a-sttc"]["txt"] == "how are you<开始回答>Fine."
    s2s = samples["b-s2s"]
    assert s2s["txt"] == "<安慰鼓励>I am so sorry."
    assert s2s["extra"]["question"] == "my dog is sick" and "think_str" not in s2s["extra"]
    assert (s2s["extra"]["age"], s2s["extra"]["q_emotion"], s2s["extra"]["caption"]) == (
        "<ADULT>",
        "<SAD>",
        "<COUGH>",
    )
    assert s2s["extra"]["speech_token"] == [1, 2, 3]
    assert samples["b-s2t"]["extra"]["think_str"] == "She sounds tired and sad."
    assert samples["c-t2t"]["extra"]["question"] == "2+2?" and "wav" not in samples["c-t2t"]
    assert samples["b-hist"]["extra"]["speech_token_1"] == [3, 4]
    errors = osum_to_datadir("raw", list_file, tmp_path / "back")
    assert errors == []
    assert load_data_dir(tmp_path / "back") == load_data_dir(data_dir)


@pytest.mark.parametrize("data_type", ["shard", "combine"])
def test_unreadable_audio_fails_only_its_utterance(data_dir: Path, tmp_path: Path, data_type, capsys):
    """datadir_to_osum leaves out (and lists) the utterance whose audio is unreadable, writes
    the others, exits 1, and its summary line counts 8 done and 1 failed."""
    from espnet2_echat.bin.datadir_to_osum import main

    (tmp_path / "wav" / "a-ag.wav").write_bytes(b"not audio")
    out = tmp_path / data_type
    rc = main(["--data_dir", str(data_dir), "--data_type", data_type, "--out_dir", str(out),
               "--utts_per_shard", "4"])
    err = capsys.readouterr().err
    assert rc == 1 and f"{data_dir}: utt a-ag:" in err
    assert "datadir_to_osum: done 8, skipped 0, failed 1 in " in err
    list_file = out / ("shards_list.txt" if data_type == "shard" else "combines_list.txt")
    assert osum_to_datadir("shard", list_file, tmp_path / "back") == []
    back = load_data_dir(tmp_path / "back")["task"]
    assert "a-ag" not in back and len(back) == 8


@pytest.mark.parametrize("data_type", ["shard", "combine"])
def test_tar_round_trip(data_dir: Path, tmp_path: Path, data_type: str):
    list_file = datadir_to_osum([data_dir], data_type, tmp_path / data_type, utts_per_shard=4)
    assert len(list_file.read_text().splitlines()) == 3  # 9 utterances, 4 per tar
    if data_type == "shard":
        with tarfile.open(tmp_path / "shard" / "shard_000000000.tar") as tar:
            names = tar.getnames()
        assert names[:3] == ["a-ag.txt", "a-ag.task", "a-ag.lang"]
        assert "a-ag.wav" in names and "a-ag.extra" in names
        assert (tmp_path / "shard" / "shard_000000000.tar.finished").is_file()
    errors = osum_to_datadir("shard", list_file, tmp_path / "back")
    assert errors == []
    before, after = load_data_dir(data_dir), load_data_dir(tmp_path / "back")
    assert _without_audio_paths(after) == _without_audio_paths(before)
    for utt, path in before["wav.scp"].items():
        assert np.array_equal(_audio(after["wav.scp"][utt]), _audio(path))
    hist_after = json.loads(after["history"]["b-hist"])[0]["user_wav"]
    assert np.array_equal(
        _audio(hist_after), _audio(json.loads(before["history"]["b-hist"])[0]["user_wav"])
    )


def _wenet_tar(path: Path, keys, wav_dir: Path) -> None:
    """A shard written the way the reference's packer lays it out."""
    with tarfile.open(path, "w") as tar:
        for key in keys:
            for suffix, data in (
                ("txt", f"text of {key}".encode()),
                ("task", b"<TRANSCRIBE>"),
                ("lang", b"none"),
                ("speaker", b"none"),
                ("emotion", b"none"),
                ("gender", b"none"),
                ("duration", b"0"),
                ("extra", b"{}"),
                ("wav", Path(_wav(wav_dir / f"{key}.wav", 220)).read_bytes()),
            ):
                info = tarfile.TarInfo(f"{key}.{suffix}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def _member_offset(tar_path: Path, name: str) -> tarfile.TarInfo:
    with tarfile.open(tar_path) as tar:
        return tar.getmember(name)


def test_corrupt_shard_names_tar_and_member(tmp_path: Path):
    tar_path = tmp_path / "shard_000000000.tar"
    _wenet_tar(tar_path, ["k1", "k2", "k3"], tmp_path)
    member = _member_offset(tar_path, "k2.task")
    raw = bytearray(tar_path.read_bytes())
    raw[member.offset : member.offset + 512] = b"\x5a" * 512  # destroy a header
    tar_path.write_bytes(bytes(raw))
    (tmp_path / "shards_list.txt").write_text(f"-|{tar_path}\n")
    errors = osum_to_datadir("shard", tmp_path / "shards_list.txt", tmp_path / "out")
    assert len(errors) == 1, errors
    assert str(tar_path) in errors[0] and "k2.txt" in errors[0] and "k2.lang" in errors[0]
    assert read_kaldi_map(tmp_path / "out" / "text") == {"k1": "text of k1", "k3": "text of k3"}


def test_truncated_shard_keeps_earlier_samples(tmp_path: Path):
    tar_path = tmp_path / "shard_000000000.tar"
    _wenet_tar(tar_path, ["k1", "k2", "k3"], tmp_path)
    member = _member_offset(tar_path, "k3.wav")
    tar_path.write_bytes(tar_path.read_bytes()[: member.offset_data + 100])
    (tmp_path / "shards_list.txt").write_text(f"{tar_path}\n")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "espnet2_echat.bin.osum_to_datadir",
            "--data_type",
            "shard",
            "--input",
            str(tmp_path / "shards_list.txt"),
            "--out_dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1
    assert f"{tar_path}: member k3.wav:" in res.stderr
    assert sorted(read_kaldi_map(tmp_path / "out" / "text")) == ["k1", "k2"]


def test_raw_bad_lines_named_and_labels_normalised(tmp_path: Path):
    wav = _wav(tmp_path / "a.wav", 200)
    lines = [
        {
            "key": "u1",
            "wav": wav,
            "txt": "今天 天气 很好 <ANGER>",
            "task": "<TRANSCRIBE> <EMOTION>",
        },
        "{not json",
        {"key": "u3", "wav": wav, "txt": "ok<FOO>", "task": "<TRANSCRIBE> <GENDER>"},
        {
            "key": "u4",
            "wav": wav,
            "txt": "<开心>Great!",
            "task": "<S2TCHAT> <TEXT2TOKEN> <THINK>",
            "extra": json.dumps(
                {"think_str": "Sounds happy.", "question": "I won", "speech_token": [1, 2]}
            ),
        },
        {"key": "u5", "wav": wav, "txt": "old one<MIDDLE_AGE>", "task": "<TRANSCRIBE> <AGE>"},
    ]
    path = tmp_path / "data.list"
    path.write_text(
        "\n".join(l if isinstance(l, str) else json.dumps(l, ensure_ascii=False) for l in lines)
        + "\n"
    )
    errors = osum_to_datadir("raw", path, tmp_path / "out")
    assert len(errors) == 2
    assert errors[0].startswith(f"{path}:2: ")
    assert "sample u3" in errors[1] and "<FOO>" in errors[1]
    files = load_data_dir(tmp_path / "out")
    assert files["text"]["u1"] == "今天 天气 很好" and files["utt2emotion"]["u1"] == "<ANGRY>"
    assert files["utt2age"]["u5"] == "<ADULT>"
    assert (files["reply"]["u4"], files["reply_emotion"]["u4"], files["think"]["u4"]) == (
        "Great!",
        "<开心>",
        "Sounds happy.",
    )
    assert files["text"]["u4"] == "I won" and files["speech_token"]["u4"] == "1 2"


@pytest.mark.reference
def test_reference_fixture_data_list(osum_tiny_dir: Path, tmp_path: Path):
    src = osum_tiny_dir / "train" / "data.list"
    errors = osum_to_datadir("raw", src, tmp_path / "d", wav_root=osum_tiny_dir)
    assert errors == []
    files = load_data_dir(tmp_path / "d")
    assert files["task"] == {"train_asr": "<TRANSCRIBE>", "train_s2s": "<S2TCHAT> <TEXT2TOKEN>"}
    assert files["text"]["train_asr"] == "Hello, how are you doing today?"
    list_file = datadir_to_osum([tmp_path / "d"], "raw", tmp_path / "raw")
    for orig, new in zip(src.read_text().splitlines(), list_file.read_text().splitlines()):
        orig, new = json.loads(orig), json.loads(new)
        assert Path(new.pop("wav")) == (osum_tiny_dir / orig.pop("wav")).resolve()
        new["extra"].pop("q_txt", None)
        assert new == orig
