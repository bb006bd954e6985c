"""``--model_tag`` / ``from_pretrained`` take an ESPnet model-zoo table name, as
espnet_model_zoo's downloader does (its table lookup), besides archives, URLs and dirs; the
table's archive goes through the same checked download and unpacking (no network: a local
table, a local archive and a loopback server)."""

import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from espnet2_echat.safety.archive import UnsafeArchiveError
from espnet2_echat.safety.download import fetch_packed_model, zoo_table_url

NAME = "someone/echat_tiny_zoo_test"  # owner/name: without the table it would go to the hub


@pytest.fixture
def no_hub(monkeypatch):
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise AssertionError(f"the hub was asked for {args} {kwargs}")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _table(path: Path, rows) -> Path:
    lines = ["corpus,task,name,url,fs,lang,gender,pytorch,espnet,commit,valid"]
    lines += [f"echat,s2s,{name},{url},16000,en,,,,,true" for name, url in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_lookup_is_espnet_model_zoos(tmp_path):
    """Latest version wins, unknown names are None (not the hub placeholder)."""
    table = _table(tmp_path / "t.csv", [(NAME, "/old.zip"), (NAME, "/new.zip")])
    assert zoo_table_url(NAME, table) == "/new.zip"
    assert zoo_table_url("nobody/none", table) is None
    # the table installed with espnet_model_zoo is read by default
    assert zoo_table_url("kamo-naoyuki/mini_an4_asr_train_raw_bpe_valid.acc.best").startswith(
        "https://zenodo.org/")


@pytest.mark.reference
def test_table_name_of_a_local_archive_loads(converted_dir, tmp_path, monkeypatch, no_hub):
    from espnet2_echat.inference.speech2response import Speech2Response
    from espnet2_echat.zoo import pack_model

    monkeypatch.chdir(tmp_path)
    pack_model(str(converted_dir / "config.yaml"), str(converted_dir / "model.pth"), "m.zip")
    monkeypatch.setenv("ECHAT_MODEL_ZOO_TABLE", str(_table(tmp_path / "t.csv",
                                                           [(NAME, tmp_path / "m.zip")])))
    monkeypatch.chdir("/")
    cache = tmp_path / "cache"
    s2r = Speech2Response.from_pretrained(NAME, cachedir=str(cache))
    assert Path(s2r.model_file).is_relative_to(cache)
    out = s2r(text="Hello.", task="t2t", max_new_tokens=3, do_sample=False)
    assert 0 < len(out.ids) <= 3


class _Zip(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_table_url_is_downloaded_checked_and_unpacked_safely(tmp_path, monkeypatch, no_hub):
    """The table's url is fetched from a loopback server into the chosen cache; an archive
    with a member escaping the cache is refused, as any other archive is."""
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("meta.yaml", "files: {model_file: model.pth}\nyaml_files: {}\n")
        z.writestr("../../escaped.txt", "x")
    _Zip.body = evil.read_bytes()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Zip)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/evil.zip"
        monkeypatch.setenv("ECHAT_MODEL_ZOO_TABLE", str(_table(tmp_path / "t.csv", [(NAME, url)])))
        with pytest.raises(UnsafeArchiveError, match="escaped"):
            fetch_packed_model(NAME, tmp_path / "cache")
    finally:
        httpd.shutdown()
    assert any((tmp_path / "cache").rglob("*evil.zip"))  # it was downloaded, then refused
    assert not list(tmp_path.rglob("escaped.txt"))


def test_a_name_in_no_table_is_not_a_path(tmp_path, monkeypatch, no_hub):
    monkeypatch.setenv("ECHAT_MODEL_ZOO_TABLE", str(_table(tmp_path / "t.csv", [])))
    with pytest.raises(FileNotFoundError, match="model-zoo table"):
        fetch_packed_model("not_in_any_table", tmp_path / "cache")
