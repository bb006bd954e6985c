"""Data preparation under bad input and faults: a bad sample or utterance is listed with
its reason and file/line, every good one is kept, backups are never overwritten, and a
writer killed half-way leaves the previous files."""

import json

import numpy as np
import pytest
import soundfile as sf

from espnet2_echat.bin import extract_speech_tokens as extract_cli
from espnet2_echat.bin import osum_to_datadir as osum_cli
from espnet2_echat.data import datadir
from espnet2_echat.data.datadir import fix_data_dir, read_kaldi_map, write_data_dir
from espnet2_echat.data.speech_tokenizer import extract_speech_tokens


def _wav(path, seconds=0.3):
    sf.write(path, (0.1 * np.sin(np.arange(int(16000 * seconds)) / 5)).astype("float32"), 16000)
    return str(path)


GOOD = {"key": "good1", "txt": "hello", "task": "<TRANSCRIBE>"}
BAD_LINES = {
    "not_json": ("{not json", "Expecting property name"),
    "no_txt": (json.dumps({"key": "b1"}), "missing required key 'txt'"),
    "crop": (json.dumps({"key": "b2", "txt": "x", "start": 1}), "start/end crops"),
    "dotdot_key": (json.dumps({"key": "../evil", "txt": "x"}), "sample ../evil: key contains a path separator"),
    "hidden_key": (json.dumps({"key": ".x", "txt": "x"}), "starts with '.'"),
    "bad_label": (json.dumps({"key": "b3", "txt": "x", "task": "<GENDER>", "extra": {"gender": "robot"}}), "sample b3"),
    "duplicate": (json.dumps(GOOD), "sample good1: duplicate key"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_osum_raw_bad_line_is_listed_and_good_samples_kept(tmp_path, case, capsys):
    line, message = BAD_LINES[case]
    wav = _wav(tmp_path / "a.wav")
    good2 = dict(GOOD, key="good2")
    rows = [json.dumps(dict(GOOD, wav=wav)), line, json.dumps(dict(good2, wav=wav))]
    (tmp_path / "data.list").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    rc = osum_cli.main(["--data_type", "raw", "--input", str(tmp_path / "data.list"),
                        "--out_dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and message in err
    if case != "duplicate" and case != "bad_label" and "key" not in case:
        assert f"data.list:2:" in err  # file and line
    assert "every good sample was written" in err.splitlines()[-1]
    assert "osum_to_datadir: done 2, skipped 0, failed 1 in " in err
    assert sorted(read_kaldi_map(out / "task")) == ["good1", "good2"]
    assert message in (out / "conversion_errors").read_text()
    assert not (tmp_path / "evil").exists()


def test_osum_conversion_killed_while_writing_keeps_previous_dir(tmp_path, monkeypatch):
    wav = _wav(tmp_path / "a.wav")
    rows = [json.dumps(dict(GOOD, key=f"u{i}", wav=wav)) for i in range(4)]
    (tmp_path / "l").write_text("\n".join(rows[:2]) + "\n")
    out = tmp_path / "out"
    assert osum_cli.main(["--data_type", "raw", "--input", str(tmp_path / "l"), "--out_dir", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    (tmp_path / "l").write_text("\n".join(rows) + "\n")
    calls = []
    real = datadir.atomic_write

    def dying(path, *a, **k):  # the third file's temporary copy is being written: killed
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(path, *a, **k)

    monkeypatch.setattr(datadir, "atomic_write", dying)
    with pytest.raises(KeyboardInterrupt):
        osum_cli.main(["--data_type", "raw", "--input", str(tmp_path / "l"), "--out_dir", str(out)])
    monkeypatch.setattr(datadir, "atomic_write", real)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left
    assert osum_cli.main(["--data_type", "raw", "--input", str(tmp_path / "l"), "--out_dir", str(out)]) == 0
    for name in ("task", "wav.scp", "text", "utt2spk"):
        lines = (out / name).read_text().splitlines()
        assert [ln.split()[0] for ln in lines] == ["u0", "u1", "u2", "u3"], name  # once each


def test_fix_data_dir_never_overwrites_a_backup(tmp_path):
    d = tmp_path / "d"
    rec = {"task": "<TRANSCRIBE>", "text": "x", "wav.scp": "/a.wav", "utt2spk": "s"}
    write_data_dir(d, {"a": rec, "b": dict(rec, task="<BAD>")})
    original = (d / "task").read_text()
    dropped, _ = fix_data_dir(d, check_audio=False, require_speech_tokens=False)
    assert dropped == ["b"]
    (d / "task").write_text("a <NOT_A_TASK>\n")  # a careless edit, then a second fix
    (d / "text").write_text("a x\n")
    dropped, _ = fix_data_dir(d, check_audio=False, require_speech_tokens=False)
    assert dropped == ["a"]
    assert (d / ".backup" / "task").read_text() == original  # the first original survives
    assert (d / ".backup.1" / "task").read_text() == "a <NOT_A_TASK>\n"


def test_fix_data_dir_drops_unsafe_ids(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    for name, value in (("task", "<TRANSCRIBE>"), ("text", "t"), ("wav.scp", "/a.wav"), ("utt2spk", "s")):
        (d / name).write_text(f"../x {value}\nok {value}\n")
    dropped, issues = fix_data_dir(d, check_audio=False, require_speech_tokens=False)
    assert dropped == ["../x"] and any(i.kind == "bad_id" and i.line == 1 for i in issues)
    assert read_kaldi_map(d / "task") == {"ok": "<TRANSCRIBE>"}


class _Tok:
    def encode(self, wav, fs=16000):
        return [1, 2, 3]


@pytest.mark.parametrize("problem", ["missing_file", "not_audio", "no_entry"])
def test_speech_token_extraction_continues_past_a_bad_utterance(tmp_path, problem, monkeypatch, capsys):
    d = tmp_path / "d"
    good = _wav(tmp_path / "g.wav")
    bad = tmp_path / "bad.wav"
    if problem == "not_audio":
        bad.write_bytes(b"RIFF garbage")
    utts = {"a": {"task": "<TEXT2TOKEN>", "text": "x", "wav.scp": good},
            "b": {"task": "<TEXT2TOKEN>", "text": "y", "wav.scp": str(bad)},
            "c": {"task": "<TEXT2TOKEN>", "text": "z", "wav.scp": good},
            "d": {"task": "<TRANSCRIBE>", "text": "w", "wav.scp": good}}  # no tokens: skipped
    if problem == "no_entry":
        del utts["b"]["wav.scp"]
    write_data_dir(d, utts)
    errors = {}
    assert extract_speech_tokens(d, _Tok(), errors=errors) == 2
    assert list(errors) == ["b"] and "utt b" in errors["b"]
    assert read_kaldi_map(d / "speech_token") == {"a": "1 2 3", "c": "1 2 3"}
    with pytest.raises(ValueError, match="utt b"):
        extract_speech_tokens(d, _Tok())  # without an error list: the first bad one raises
    monkeypatch.setattr(extract_cli, "load_speech_tokenizer", lambda *a: _Tok())
    rc = extract_cli.main(["--data_dir", str(d), "--tokenizer", "standin", "--model_file", "x"])
    err = capsys.readouterr().err
    assert rc == 1 and "1 utterance(s) got no tokens" in err
    assert "extract_speech_tokens: done 2, skipped 1, failed 1 in " in err
    assert (d / "speech_token_errors").read_text().startswith("b ")
