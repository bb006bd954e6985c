"""Stage 11/12: a packed model unpacks through espnet_model_zoo and answers; the upload dry
run builds the repo folder with a model card."""

import os
import shutil

import pytest
import soundfile as sf
import yaml

from espnet2_echat.zoo import pack_model, upload_to_hf

pytestmark = pytest.mark.reference


@pytest.fixture(scope="module")
def packed(converted_dir, module_tmp):
    work = module_tmp("pack")
    shutil.copytree(converted_dir, work / "exp" / "model")
    (work / "exp" / "model" / "RESULTS.md").write_text("| set | wer |\n|---|---|\n| a | 1.0 |\n")
    cwd = os.getcwd()
    os.chdir(work)
    try:
        # the converted config names its LLM dir relative to itself ("llm"): pack it explicitly
        out = pack_model("exp/model/config.yaml", "exp/model/model.pth", "exp/model/packed.zip",
                         results="exp/model/RESULTS.md", extra=["exp/model/llm"])
    finally:
        os.chdir(cwd)
    return work / out


def test_zoo_unpack_and_answer(packed, tmp_path, osum_tiny_dir):
    from espnet_model_zoo.downloader import ModelDownloader

    from espnet2_echat.inference.speech2response import Speech2Response

    files = ModelDownloader(cachedir=str(tmp_path)).download_and_unpack(str(packed))
    assert set(files) == {"train_config", "model_file"}
    s2r = Speech2Response(**files)
    wav, fs = sf.read(osum_tiny_dir / "wav" / "utt1.wav")
    out = s2r(speech=wav, fs=fs, task="asr", max_new_tokens=5, do_sample=False)
    assert 0 < len(out.ids) <= 5 and set(out.heads) == {"text"}


def test_upload_dry_run(packed, tmp_path):
    folder = upload_to_hf(str(packed), "someone/echat_test", str(tmp_path / "hf"), dry_run=True)
    card = (folder / "README.md").read_text()
    assert card.startswith("---\ntags:\n- espnet")
    assert "someone/echat_test" in card and "| a | 1.0 |" in card
    meta = yaml.safe_load((folder / "meta.yaml").read_text())
    assert (folder / meta["files"]["model_file"]).is_file()


def test_pack_relative_names_with_the_llm_outside_the_working_dir(converted_dir, tmp_path):
    """The recipe's case (small_real: the LLM in the wheel cache): relative model paths and a
    referenced dir elsewhere make the archive root a parent of the working dir; the relative
    names must still be found (they were resolved against that root and refused)."""
    import zipfile

    work = tmp_path / "work"
    shutil.copytree(converted_dir, work / "exp" / "model")
    # a relative name the model finds in an ancestor of its config's folder, outside work/
    shutil.move(work / "exp" / "model" / "llm", tmp_path / "cache_llm")
    config_file = work / "exp" / "model" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    assert config["llm_conf"]["name_or_path"] == "llm"
    config["llm_conf"]["name_or_path"] = "cache_llm"
    config_file.write_text(yaml.safe_dump(config))
    (work / "RESULTS.md").write_text("| set | wer |\n")
    cwd = os.getcwd()
    os.chdir(work)
    try:
        out = pack_model("exp/model/config.yaml", "exp/model/model.pth", "exp/model/packed.zip",
                         results="./RESULTS.md")
    finally:
        os.chdir(cwd)
    names = zipfile.ZipFile(work / out).namelist()
    assert "work/exp/model/model.pth" in names, names
    assert "cache_llm/config.json" in names, names
    assert "work/RESULTS.md" in names, names
