"""Utterance ids that are not plain names are refused by the validator and by every
writer; downloads are checked against the announced size and the given hash."""

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from espnet2_echat.data.datadir import validate_data_dir, write_data_dir, write_kaldi_map
from espnet2_echat.safety.download import DownloadCheckError, checked_download
from espnet2_echat.safety.names import UnsafeNameError, child_path

BAD_IDS = ["../up", "a/b", "/abs", ".hidden", "..", "a\\b", "tab\tid", "nul\x00id", "x" * 201]


@pytest.mark.parametrize("utt", BAD_IDS, ids=range(len(BAD_IDS)))
def test_writers_refuse_unsafe_ids(tmp_path, utt):
    with pytest.raises(UnsafeNameError, match="expected a plain file name"):
        write_data_dir(tmp_path / "d", {utt: {"task": "<TRANSCRIBE>"}, "ok": {"task": "<TRANSCRIBE>"}})
    assert not (tmp_path / "d" / "task").exists()  # nothing half-written
    with pytest.raises(UnsafeNameError):
        child_path(tmp_path / "wav", utt, ".wav")


@pytest.mark.parametrize("utt", ["../../x", "a/b", ".x"])
def test_validator_names_the_bad_id(tmp_path, utt):
    d = tmp_path / "d"
    d.mkdir()
    (d / "task").write_text(f"{utt} <TRANSCRIBE>\n")
    issues = validate_data_dir(d, check_audio=False)
    assert [(i.file, i.line, i.kind) for i in issues] == [("task", 1, "bad_id")]
    assert utt in str(issues[0]) and "plain name" in str(issues[0])


def test_plain_ids_pass(tmp_path):
    ids = ["1089-134686-0000", "BAC009S0002W0122", "dia0_utt0", "spk.a-b_c+1", "中文_001"]
    write_kaldi_map(tmp_path / "text", {u: "x" for u in ids})
    assert child_path(tmp_path, ids[0], ".wav") == tmp_path / f"{ids[0]}.wav"


@pytest.mark.reference
def test_decode_writer_refuses_an_unsafe_id(converted_dir, tmp_path):
    from espnet2_echat.inference.batch_decode import _append
    from espnet2_echat.inference.speech2response import Response

    r = Response(text="hi", wav=[0.0] * 10, sample_rate=16000)
    with pytest.raises(UnsafeNameError, match=r"\.\./\.\./evil"):
        _append(tmp_path / "out", ["../../evil"], [r], "tts", "none")
    assert not list(tmp_path.rglob("evil*"))


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b"x" * 1000
    length = None

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(self.length or len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/model.zip"
    httpd.shutdown()
    _Handler.length = None


def test_download_checks_hash_and_size(server, tmp_path):
    good = hashlib.sha256(_Handler.body).hexdigest()
    assert checked_download(f"{server}#sha256={good}", tmp_path / "a.zip").read_bytes() == _Handler.body
    with pytest.raises(DownloadCheckError, match="SHA-256"):
        checked_download(server, tmp_path / "b.zip", sha256="0" * 64)
    assert not (tmp_path / "b.zip").exists() and not list(tmp_path.glob(".b.zip*"))
    _Handler.length = 2000  # the connection ends early: fewer bytes than announced
    with pytest.raises(Exception):
        checked_download(server, tmp_path / "c.zip")
    assert not (tmp_path / "c.zip").exists()
