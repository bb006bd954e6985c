"""A config naming a local LLM, tokenizer or Whisper path that does not exist (a moved model
dir, a typo) fails at once with the config file, the key and the path, and never reaches
transformers as a hub name; a real ``owner/name`` hub name still passes; the default recipe's
configs name local parts only."""

import re
import shutil
from pathlib import Path

import pytest
import yaml

from espnet2_echat.models.model_source import (
    ModelSourceError,
    looks_like_local_path,
    resolve_model_source,
)

REPO = Path(__file__).resolve().parents[2]
KEYS = ("llm_conf.name_or_path", "tokenizer", "encoder_init")


@pytest.fixture(autouse=True)
def no_hub(monkeypatch):
    """Any transformers load of a missing path fails the test instead of retrying a hub."""
    import transformers

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for cls_name in ("AutoConfig", "AutoTokenizer", "WhisperModel"):
        cls = getattr(transformers, cls_name)

        def patched(name, *args, _load=cls.from_pretrained, _cls=cls_name, **kwargs):
            if not Path(str(name)).exists():
                raise AssertionError(f"transformers {_cls} was asked for {name!r}")
            return _load(name, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", patched)


def _assert_names(err: Exception, *parts: str):
    text = str(err)
    for part in parts:
        assert part in text, (part, text)


@pytest.mark.reference
def test_moved_model_dir_names_config_key_and_path(converted_dir, tmp_path):
    """config.yaml + model.pth copied without the llm/ folder beside them."""
    from espnet2_echat.tasks.echat import EChatTask

    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("config.yaml", "model.pth"):
        shutil.copy(converted_dir / name, moved / name)
    with pytest.raises(ModelSourceError) as err:
        EChatTask.build_model_from_file(moved / "config.yaml", moved / "model.pth")
    _assert_names(err.value, str(moved / "config.yaml"), "llm_conf.name_or_path", "'llm'")


@pytest.mark.reference
def test_api_names_a_missing_tokenizer(converted_dir, tmp_path):
    from espnet2_echat.inference import Speech2Response

    model = tmp_path / "model"
    shutil.copytree(converted_dir, model)
    config = yaml.safe_load((model / "config.yaml").read_text())
    config["tokenizer"] = "conf/tokenizer/qwen2.5-typo"
    (model / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ModelSourceError) as err:
        Speech2Response(model / "config.yaml", model / "model.pth")
    _assert_names(err.value, str(model / "config.yaml"), "tokenizer", "qwen2.5-typo")


@pytest.mark.parametrize("key, value", [
    ("llm_conf.name_or_path", "conf/llm/qwen2.5-tny"),
    ("encoder_init", "exp/whisper/missing_encoder.pt"),
    ("tokenizer", "/nowhere/tokenizer"),
])
def test_training_config_typo_names_config_key_and_path(tmp_path, monkeypatch, key, value):
    """A training ``--config`` with one bad path: building the model (the first thing
    ``echat_train`` does after parsing) stops with the config, the key and the value."""
    from espnet2_echat.tasks.echat import EChatTask

    monkeypatch.chdir(REPO)
    config = yaml.safe_load((REPO / "conf" / "train_stage1_understanding.yaml").read_text())
    if key == "llm_conf.name_or_path":
        config["llm_conf"]["name_or_path"] = value
    else:
        config[key] = value
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    args = EChatTask.get_parser().parse_args(["--config", str(path)])
    with pytest.raises(ModelSourceError) as err:
        if key == "tokenizer":
            EChatTask.build_preprocess_fn(args, train=True)
        else:
            EChatTask.build_model(args)
    _assert_names(err.value, str(path), key, value)


@pytest.mark.parametrize("value, local", [
    ("Qwen/Qwen2.5-3B-Instruct", False),
    ("openai/whisper-medium", False),
    ("llm", True),                   # a converted model's own folder
    ("conf/llm/qwen2.5-tny", True),  # two levels: a path
    ("conf/qwen2.5", True),          # conf/ is a folder here: a path, not owner conf
    ("/abs/qwen", True),
    ("./qwen", True),
    ("~/models/qwen", True),
    ("owner/name/", True),
    ("owner/bad..name", True),
])
def test_what_counts_as_a_path(value, local, monkeypatch):
    monkeypatch.chdir(REPO)
    assert looks_like_local_path(value) is local


def test_a_hub_name_the_user_gives_is_kept(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert resolve_model_source("Qwen/Qwen2.5-3B-Instruct", "llm_conf.name_or_path",
                                "x.yaml") == "Qwen/Qwen2.5-3B-Instruct"


def _values(config: dict):
    for key in KEYS:
        value = config
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value:
            yield key, value


def test_default_recipe_configs_name_local_parts_only(monkeypatch):
    """The tiny default and small_real configs (what tests and `make demo` train) resolve
    every model part locally or from a wheel: none of them is a hub name."""
    monkeypatch.chdir(REPO)
    configs = sorted(REPO.glob("conf/*.yaml")) + sorted(REPO.glob("conf/small_real/*.yaml"))
    configs += [REPO / "conf" / "model" / "tiny.yaml", REPO / "conf" / "model" / "small_real.yaml"]
    checked = 0
    for config_file in configs:
        config = yaml.safe_load(config_file.read_text()) or {}
        for key, value in _values(config):
            checked += 1
            if value.startswith("wheel:"):  # assembled from a PyPI wheel, never a hub
                continue
            resolved = resolve_model_source(value, key, str(config_file), str(REPO))
            assert value.startswith("wheel:") or Path(resolved).exists(), (config_file, key)
            assert not re.fullmatch(r"[\w.-]+/[\w.-]+", value) or Path(value).exists()
    assert checked >= 10
