"""Data-dir validator and fixer: each kind of error names file, line and utterance."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet2_echat.data import datadir


def _wav(path: Path, seconds: float = 0.2, fs: int = 16000) -> str:
    soundfile.write(path, np.zeros(int(seconds * fs), dtype=np.int16), fs, subtype="PCM_16")
    return str(path)


@pytest.fixture
def good_dir(tmp_path: Path) -> Path:
    """A valid dir with an ASR, an emotion, an S2S-think, a T2T and a history sample."""
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    utts = {
        "spk1-asr": {"task": "<TRANSCRIBE>", "text": "hello there"},
        "spk1-emo": {"task": "<EMOTION>", "text": "i am happy", "utt2emotion": "<HAPPY>"},
        "spk2-s2s": {
            "task": "<S2TCHAT> <TEXT2TOKEN> <THINK>",
            "text": "my dog is sick",
            "reply": "I am sorry to hear that.",
            "think": "The user sounds sad.",
            "reply_emotion": "<安慰鼓励>",
            "speech_token": "1 2 3 4095",
        },
        "spk2-hist": {
            "task": "<S2TCHAT> <TEXT2TOKEN> <HISTORY>",
            "reply": "Sure.",
            "speech_token": "5 6",
        },
    }
    for utt, values in utts.items():
        values["wav.scp"] = _wav(wavs / f"{utt}.wav")
        values["utt2spk"] = utt.split("-")[0]
    utts["spk2-hist"]["history"] = json.dumps(
        [
            {
                "user_wav": utts["spk1-asr"]["wav.scp"],
                "user_text": "hi",
                "reply": "hello",
                "speech_token": [7, 8],
            }
        ]
    )
    utts["t2t-1"] = {"task": "<TEXT2TEXT>", "question": "What is 2+2?", "reply": "4."}
    data = tmp_path / "data"
    datadir.write_data_dir(data, utts)
    return data


def _lines(path: Path) -> list:
    return path.read_text(encoding="utf-8").splitlines()


def test_good_dir_is_valid_and_sorted(good_dir: Path):
    assert datadir.validate_data_dir(good_dir) == []
    ids = [line.split()[0] for line in _lines(good_dir / "task")]
    assert ids == sorted(ids) == ["spk1-asr", "spk1-emo", "spk2-hist", "spk2-s2s", "t2t-1"]
    assert _lines(good_dir / "spk2utt") == ["spk1 spk1-asr spk1-emo", "spk2 spk2-hist spk2-s2s"]
    assert datadir.required_files("<TEXT2TEXT>") == {"question", "reply"}
    assert datadir.required_files("<TRANSCRIBE> <AGE> <GENDER>") == {
        "wav.scp",
        "utt2spk",
        "text",
        "utt2age",
        "utt2gender",
    }


def _replace_line(path: Path, utt: str, new_line: bytes) -> int:
    lines = path.read_bytes().splitlines()
    for i, line in enumerate(lines):
        if line.split(b" ", 1)[0] == utt.encode():
            lines[i] = new_line
            path.write_bytes(b"\n".join(lines) + b"\n")
            return i + 1
    raise AssertionError(utt)


def _break_missing_audio(d):
    Path(datadir.read_kaldi_map(d / "wav.scp")["spk1-emo"]).unlink()
    return "wav.scp", 2, "spk1-emo", "missing_audio"


def _break_empty_text(d):
    return "text", _replace_line(d / "text", "spk1-emo", b"spk1-emo "), "spk1-emo", "empty"


def _break_non_utf8(d):
    line = _replace_line(d / "text", "spk1-emo", b"spk1-emo caf\xe9 \xff")
    return "text", line, "spk1-emo", "encoding"


def _break_unknown_task(d):
    line = _replace_line(d / "task", "spk1-emo", "spk1-emo <FOO>".encode())
    return "task", line, "spk1-emo", "unknown_task"


def _break_id_mismatch(d):
    line = _replace_line(d / "reply", "spk2-s2s", "spk9-s2s I am sorry.".encode())
    return "reply", line, "spk9-s2s", "id_mismatch"


def _break_tokens(d):
    line = _replace_line(d / "speech_token", "spk2-s2s", b"spk2-s2s 1 2 4096")
    return "speech_token", line, "spk2-s2s", "token_range"


def _break_label(d):
    line = _replace_line(d / "utt2emotion", "spk1-emo", "spk1-emo <ANGER>".encode())
    return "utt2emotion", line, "spk1-emo", "bad_label"


def _break_history(d):
    line = _replace_line(d / "history", "spk2-hist", b'spk2-hist [{"user_wav": "x"}]')
    return "history", line, "spk2-hist", "bad_history"


@pytest.mark.parametrize(
    "breaker",
    [
        _break_missing_audio,
        _break_empty_text,
        _break_non_utf8,
        _break_unknown_task,
        _break_id_mismatch,
        _break_tokens,
        _break_label,
        _break_history,
    ],
)
def test_each_error_named_and_fixer_keeps_others(good_dir: Path, breaker):
    file, line, utt, kind = breaker(good_dir)
    issues = datadir.validate_data_dir(good_dir)
    matching = [i for i in issues if i.kind == kind]
    assert matching, issues
    assert (matching[0].file, matching[0].line, matching[0].utt) == (file, line, utt)
    assert f"{file}:{line}: utt {utt}:" in str(matching[0])
    dropped, _ = datadir.fix_data_dir(good_dir)
    assert utt in dropped or utt == "spk9-s2s"
    assert datadir.validate_data_dir(good_dir) == []
    kept = datadir.utterance_ids(good_dir)
    # only the broken utterance goes (the id-mismatch case also drops spk2-s2s, whose
    # reply line was renamed away)
    assert len(kept) == 4
    assert (good_dir / ".backup" / file).is_file()


def test_unsorted_is_reported_and_fixed_by_sorting(good_dir: Path):
    path = good_dir / "text"
    lines = _lines(path)
    path.write_text("\n".join(reversed(lines)) + "\n", encoding="utf-8")
    issues = datadir.validate_data_dir(good_dir)
    assert [i.kind for i in issues] == ["unsorted"] * (len(lines) - 1)
    assert issues[0].file == "text" and issues[0].line == 2
    dropped, _ = datadir.fix_data_dir(good_dir)
    assert dropped == [] and _lines(path) == lines


def test_missing_required_file_names_utts(good_dir: Path):
    (good_dir / "think").unlink()
    issues = datadir.validate_data_dir(good_dir)
    assert [(i.file, i.utt, i.kind) for i in issues] == [("think", "spk2-s2s", "missing_file")]


def test_cli_exit_status(good_dir: Path):
    cmd = [sys.executable, "-m", "espnet2_echat.bin.validate_data_dir", str(good_dir)]
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    _break_tokens(good_dir)
    res = subprocess.run(cmd + ["--speech_token_vocab", "4096"], capture_output=True, text=True)
    assert res.returncode == 1
    assert "speech_token:2: utt spk2-s2s: [token_range]" in res.stderr


def test_tab_separated_lines_are_read(good_dir: Path):
    path = good_dir / "text"
    lines = _lines(path)
    path.write_text("\n".join(l.replace(" ", "\t", 1) for l in lines) + "\n", encoding="utf-8")
    assert datadir.read_kaldi_map(path)["spk1-asr"] == "hello there"
    assert datadir.validate_data_dir(good_dir) == []
