"""Conversion, packing, loading and training under bad input: a failed conversion leaves
the previous model loadable, errors name the file and what was expected."""

import shutil
import zipfile

import pytest
import torch
import yaml

pytestmark = pytest.mark.reference


@pytest.fixture
def good_model(converted_dir, tmp_path):
    out = tmp_path / "model"
    shutil.copytree(converted_dir, out)
    return out


def _loads(model_dir):
    from espnet2_echat.tasks.echat import EChatTask

    model, _ = EChatTask.build_model_from_file(model_dir / "config.yaml", model_dir / "model.pth")
    return sum(p.numel() for p in model.parameters())


BAD_CHECKPOINTS = {
    "wrong_keys": (lambda p: torch.save({"x": torch.zeros(1)}, p), "checkpoint does not match the config"),
    "truncated": (lambda p: p.write_bytes(b"PK\x03\x04" + b"\x00" * 20), "zip|archive|central directory|failed finding"),
    "not_tensors": (lambda p: torch.save({"a": [1, 2]}, p), "tensors|state dict|expected"),
}


@pytest.mark.parametrize("case", sorted(BAD_CHECKPOINTS))
def test_failed_conversion_leaves_the_previous_model_loadable(good_model, osum_tiny_dir, tmp_path, case):
    from espnet2_echat.convert.osum_echat import convert_osum_echat

    write, message = BAD_CHECKPOINTS[case]
    bad = tmp_path / "bad.pt"
    write(bad)
    before = {p.relative_to(good_model): p.read_bytes() for p in good_model.rglob("*") if p.is_file()}
    n = _loads(good_model)
    with pytest.raises(Exception, match=message):
        convert_osum_echat(str(bad), str(osum_tiny_dir / "config.yaml"), str(osum_tiny_dir / "llm"), str(good_model))
    after = {p.relative_to(good_model): p.read_bytes() for p in good_model.rglob("*") if p.is_file()}
    assert after == before and _loads(good_model) == n


def test_conversion_names_a_missing_llm_config(osum_tiny_dir, tmp_path):
    from espnet2_echat.convert.osum_echat import ConversionError, convert_osum_echat

    with pytest.raises(ConversionError, match=f"{tmp_path} has no config.json"):
        convert_osum_echat(str(osum_tiny_dir / "model.pt"), str(osum_tiny_dir / "config.yaml"), str(tmp_path), str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_conversion_into_an_existing_dir_replaces_it_cleanly(good_model, osum_tiny_dir):
    from espnet2_echat.convert.osum_echat import convert_osum_echat

    (good_model / "notes.txt").write_text("mine")
    convert_osum_echat(str(osum_tiny_dir / "model.pt"), str(osum_tiny_dir / "config.yaml"), str(osum_tiny_dir / "llm"), str(good_model))
    assert (good_model / "notes.txt").read_text() == "mine"  # other files are kept
    assert not [p for p in good_model.iterdir() if p.name.startswith(".")]
    assert _loads(good_model) > 0


def test_corrupt_model_file_is_named(good_model):
    from espnet2_echat.inference import Speech2Response

    (good_model / "model.pth").write_bytes(b"garbage")
    with pytest.raises(Exception, match="model.pth|zip|pickle|invalid load key"):
        Speech2Response(good_model / "config.yaml", good_model / "model.pth")


def test_loading_a_dir_needs_exactly_one_model_file(good_model):
    from espnet2_echat.inference import Speech2Response

    shutil.copy(good_model / "model.pth", good_model / "other.pth")
    with pytest.raises(FileNotFoundError, match="exactly one \\*.pth"):
        Speech2Response.from_pretrained(str(good_model))


def test_archive_without_a_model_file_is_refused(good_model, tmp_path):
    from espnet2_echat.inference import Speech2Response

    meta = {"yaml_files": {"train_config": "m/config.yaml"}, "files": {}}
    archive = tmp_path / "nomodel.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("meta.yaml", yaml.safe_dump(meta))
        z.write(good_model / "config.yaml", "m/config.yaml")
    with pytest.raises(KeyError, match="names no \\['model_file'\\]"):
        Speech2Response.from_pretrained(str(archive), cachedir=str(tmp_path / "c"))


def test_pack_names_a_missing_file(good_model, tmp_path):
    from espnet2_echat.zoo import pack_model

    with pytest.raises(FileNotFoundError, match="nothing.pth does not exist"):
        pack_model(str(good_model / "config.yaml"), str(tmp_path / "nothing.pth"), str(tmp_path / "p.zip"))
    assert not list(tmp_path.glob("*.zip")) and not list(tmp_path.glob(".partial*"))


def test_pack_of_a_converted_model_holds_relative_names_only(good_model, tmp_path, monkeypatch):
    from espnet2_echat.safety.archive import check_archive
    from espnet2_echat.zoo import pack_model

    monkeypatch.chdir(tmp_path)  # not an ancestor of the model
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    out = pack_model(str(good_model / "config.yaml"), str(good_model / "model.pth"), "p.tgz")
    meta = check_archive(out)
    assert meta["files"]["model_file"] == "model.pth"


def test_init_param_that_does_not_exist_is_named(tmp_path):
    import argparse

    from espnet2_echat.tasks.echat import EChatTask

    args = argparse.Namespace(required=[], require_init_param=False, print_config=False,
                              collect_stats=False, init_param=[f"{tmp_path}/none.pth:encoder"])
    with pytest.raises(FileNotFoundError, match="--init_param .*none.pth:encoder: .*none.pth does not exist"):
        EChatTask.check_required_command_args(args)
