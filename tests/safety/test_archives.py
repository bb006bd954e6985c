"""Untrusted model archives: every member name, link and meta.yaml path must stay inside
the unpack folder; a refused archive writes nothing; a packed converted model loads
offline from any working directory."""

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from espnet2_echat.safety.archive import UnsafeArchiveError, check_archive, safe_unpack

META_OK = {"yaml_files": {"train_config": "exp/config.yaml"}, "files": {"model_file": "exp/m.pth"}}


def _tar(path: Path, members, meta=META_OK) -> Path:
    """members: (name, kind, payload/link target)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, data in [("meta.yaml", "file", yaml.safe_dump(meta))] + members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                raw = data.encode()
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
            else:
                info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                             "fifo": tarfile.FIFOTYPE, "dir": tarfile.DIRTYPE}[kind]
                info.linkname = data or ""
                tar.addfile(info)
    return path


GOOD = [("exp/config.yaml", "file", "a: exp/m.pth\n"), ("exp/m.pth", "file", "x")]

UNSAFE_TAR = {
    "dotdot_member": GOOD + [("../../escaped.txt", "file", "pwned")],
    "absolute_member": GOOD + [("/tmp/h14_abs_escape.txt", "file", "pwned")],
    "nested_dotdot": GOOD + [("exp/../../escaped.txt", "file", "pwned")],
    "symlink_outside": GOOD + [("exp/link", "symlink", "../../..")],
    "symlink_absolute": GOOD + [("exp/link", "symlink", "/etc")],
    "write_through_link": GOOD + [("d", "symlink", "exp"), ("d/escaped.txt", "file", "x")],
    "hardlink_outside": GOOD + [("exp/hl", "hardlink", "../../etc/passwd")],
    "fifo": GOOD + [("exp/fifo", "fifo", None)],
    "backslash": GOOD + [("..\\..\\escaped.txt", "file", "x")],
}


@pytest.mark.parametrize("case", sorted(UNSAFE_TAR))
def test_unsafe_tar_members_are_refused(tmp_path, case):
    archive = _tar(tmp_path / "m.tgz", UNSAFE_TAR[case])
    out = tmp_path / "cache" / "model"
    with pytest.raises(UnsafeArchiveError) as err:
        safe_unpack(archive, out)
    assert str(archive) in str(err.value)
    assert not out.exists() and not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "cache").exists()  # refused before anything is written


UNSAFE_META = {
    "yaml_dotdot": {"yaml_files": {"train_config": "../../x.yaml"}, "files": {}},
    "yaml_absolute": {"yaml_files": {"train_config": "/tmp/x.yaml"}, "files": {}},
    "file_dotdot": {"yaml_files": {}, "files": {"model_file": "exp/../../m.pth"}},
    "not_in_archive": {"yaml_files": {"train_config": "exp/other.yaml"}, "files": {}},
    "no_mapping": {"yaml_files": ["exp/config.yaml"], "files": {}},
}


@pytest.mark.parametrize("case", sorted(UNSAFE_META))
def test_unsafe_meta_paths_are_refused(tmp_path, case):
    archive = _tar(tmp_path / "m.tgz", GOOD, meta=UNSAFE_META[case])
    with pytest.raises(UnsafeArchiveError, match="meta.yaml"):
        safe_unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "x.yaml").exists()


def test_zip_dotdot_and_missing_meta(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("meta.yaml", yaml.safe_dump(META_OK))
        z.writestr("../evil.txt", "x")
    with pytest.raises(UnsafeArchiveError, match=r"'\.\./evil\.txt' contains '\.\.'"):
        safe_unpack(bad, tmp_path / "out")
    nometa = tmp_path / "nometa.zip"
    with zipfile.ZipFile(nometa, "w") as z:
        z.writestr("exp/m.pth", "x")
    with pytest.raises(UnsafeArchiveError, match="no meta.yaml"):
        check_archive(nometa)
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive")
    with pytest.raises(UnsafeArchiveError, match="not a zip or tar"):
        check_archive(junk)


def test_safe_archive_unpacks_with_inside_link_and_rewritten_yaml(tmp_path):
    archive = _tar(tmp_path / "m.tgz", GOOD + [("exp/alias", "symlink", "m.pth")])
    out = tmp_path / "cache" / "model"
    files = safe_unpack(archive, out)
    assert files == {"train_config": str(out / "exp/config.yaml"), "model_file": str(out / "exp/m.pth")}
    # ESPnet's behaviour kept: archive paths in the config become absolute under out
    assert yaml.safe_load(Path(files["train_config"]).read_text()) == {"a": str(out / "exp/m.pth")}
    assert (out / "exp" / "alias").resolve() == (out / "exp" / "m.pth").resolve()
    assert safe_unpack(archive, out) == files  # a complete earlier unpack is reused


@pytest.mark.reference
def test_packed_converted_model_loads_offline_from_elsewhere(converted_dir, tmp_path, monkeypatch):
    """pack_echat from an unrelated working directory: relative names, llm/ included; the
    archive then loads through from_pretrained with the hub switched off."""
    from espnet2_echat.bin.pack_echat import main as pack_main
    from espnet2_echat.inference.speech2response import Speech2Response

    monkeypatch.chdir(tmp_path)
    pack_main(["--train_config", str(converted_dir / "config.yaml"),
               "--model_file", str(converted_dir / "model.pth"), "--outpath", "packed.zip"])
    names = zipfile.ZipFile(tmp_path / "packed.zip").namelist()
    assert "llm/config.json" in names and all(not n.startswith("/") for n in names)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir("/")
    cache = tmp_path / "cache"
    s2r = Speech2Response.from_pretrained(str(tmp_path / "packed.zip"), cachedir=str(cache))
    assert Path(s2r.model_file).is_relative_to(cache)
    out = s2r(text="Hello.", task="t2t", max_new_tokens=3, do_sample=False)
    assert 0 < len(out.ids) <= 3


@pytest.mark.reference
def test_model_tag_unpacks_into_the_chosen_cache_not_the_venv(converted_dir, tmp_path, monkeypatch):
    import espnet_model_zoo

    from espnet2_echat.inference.batch_decode import inference
    from espnet2_echat.zoo import pack_model

    monkeypatch.chdir(tmp_path)
    pack_model(str(converted_dir / "config.yaml"), str(converted_dir / "model.pth"), "m.zip")
    monkeypatch.setenv("ECHAT_CACHE_DIR", str(tmp_path / "echat_cache"))
    before = set(os.listdir(Path(espnet_model_zoo.__file__).parent))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "question").write_text("u1 Hello.\n")
    inference(str(tmp_path / "out"), [f"{tmp_path}/data/question,question,text"], "t2t",
              model_tag="m.zip", max_new_tokens=2, do_sample=False)
    assert (tmp_path / "out" / "text").read_text().startswith("u1")
    assert any((tmp_path / "echat_cache").rglob("model.pth"))
    assert set(os.listdir(Path(espnet_model_zoo.__file__).parent)) == before


def test_every_yaml_of_a_model_with_token2wav_is_rewritten(tmp_path):
    """Two configs (the model's and the token2wav's, as stage 11 packs them): both name
    archive members, and both must point into the unpack folder afterwards."""
    meta = {
        "yaml_files": {"train_config": "exp/config.yaml", "token2wav_train_config": "t2w/config.yaml"},
        "files": {"model_file": "exp/m.pth", "token2wav_model_file": "t2w/m.pth"},
    }
    members = GOOD + [("t2w/config.yaml", "file", "b: t2w/m.pth\n"), ("t2w/m.pth", "file", "y")]
    out = tmp_path / "cache" / "model"
    files = safe_unpack(_tar(tmp_path / "m.tgz", members, meta), out)
    assert yaml.safe_load(Path(files["train_config"]).read_text()) == {"a": str(out / "exp/m.pth")}
    t2w = yaml.safe_load(Path(files["token2wav_train_config"]).read_text())
    assert t2w == {"b": str(out / "t2w/m.pth")}
