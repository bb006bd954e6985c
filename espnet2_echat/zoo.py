"""Pack a trained model in ESPnet's model zoo format and publish it on the Hugging Face hub.

ESPnet's ``espnet2.bin.pack`` has a fixed list of tasks, so this calls its library function
``pack_funcs.pack`` with the keys ``Speech2Response`` takes (``train_config``, ``model_file``,
``token2wav_train_config``, ``token2wav_model_file``). Local files a config names (the LLM
config dir, the tokenizer, the prompt config, the speaker prompt) are packed under the same
relative path, so that ``unpack`` and ``resolve_path`` find them again.
"""

import logging
import os
import shutil
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import yaml

from espnet2_echat.safety.archive import check_archive


def _strings(value) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


# Config keys that name training inputs and outputs, not files the model needs.
NOT_MODEL_FILES = {
    "config", "output_dir", "init_param", "train_data_dir", "valid_data_dir",
    "train_data_path_and_name_and_type", "valid_data_path_and_name_and_type",
    "train_shape_file", "valid_shape_file", "multiple_iterator", "pretrain_path",
}


def referenced_paths(config_file: str) -> List[str]:
    """Local files and dirs a config's model keys name (the LLM config dir, the tokenizer,
    the prompt config...), as absolute paths; data and output dirs are not included.

    A relative value is looked up the way the model resolves it when loading
    (:func:`~espnet2_echat.models.causal_lm.resolve_path`: the config's folder and its
    ancestors, then the working directory), so a converted model's ``llm`` next to its
    config is found from any working directory."""
    from espnet2_echat.models.causal_lm import resolve_path

    with open(config_file, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    model_part = {k: v for k, v in config.items() if k not in NOT_MODEL_FILES}
    config_path = Path(config_file).resolve()
    found = set()
    for value in _strings(model_part):
        if not value or Path(value).is_absolute() or ".." in Path(value).parts:
            continue
        if value in (".", ""):
            continue
        path = Path(resolve_path(value, str(config_path.parent)))
        if path.exists() and path.resolve() != config_path:
            found.add(str(path.resolve()))
    return sorted(found)


@contextmanager
def _working_dir(path: Path):
    cwd = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(cwd)


def _pack_root(paths: Iterable[Path]) -> Path:
    """The folder archive names are relative to: the working directory when it holds every
    file (names then match the config's own relative values), else their common folder
    (ESPnet's ``pack`` would store absolute names, which safe unpacking refuses)."""
    paths = [p.resolve() for p in paths]
    cwd = Path.cwd().resolve()
    if all(cwd == p or cwd in p.parents for p in paths):
        return cwd
    return Path(os.path.commonpath([str(p if p.is_dir() else p.parent) for p in paths]))


def pack_model(
    train_config: str,
    model_file: str,
    outpath: str,
    token2wav_train_config: Optional[str] = None,
    token2wav_model_file: Optional[str] = None,
    results: Optional[str] = None,
    extra: Iterable[str] = (),
) -> Path:
    """Write the archive (``.zip``/``.tgz``...) and return its path.

    Every member is stored under a relative name, so :func:`safe_unpack
    <espnet2_echat.safety.archive.safe_unpack>` accepts the archive and the unpacked
    model loads offline (its LLM dir and tokenizer are inside)."""
    from espnet2.main_funcs.pack_funcs import pack

    files: Dict[str, Path] = {"model_file": Path(model_file)}
    yaml_files: Dict[str, Path] = {"train_config": Path(train_config)}
    options = {Path(p) for p in referenced_paths(train_config)} | {Path(p) for p in extra}
    if token2wav_train_config:
        if not token2wav_model_file:
            raise ValueError("token2wav_train_config given without token2wav_model_file")
        yaml_files["token2wav_train_config"] = Path(token2wav_train_config)
        files["token2wav_model_file"] = Path(token2wav_model_file)
        options |= {Path(p) for p in referenced_paths(token2wav_train_config)}
    if results:
        options.add(Path(results))
    image_dir = Path(train_config).parent / "images"
    if image_dir.is_dir():
        options.add(image_dir)
    for p in [*files.values(), *yaml_files.values(), *options]:
        if not p.exists():
            raise FileNotFoundError(f"pack_echat: {p} does not exist")
    out = Path(outpath).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    root = _pack_root([*files.values(), *yaml_files.values(), *options])

    cwd = Path.cwd()

    def rel(p: Path) -> str:  # resolved against the caller's working dir, not root's
        return os.path.relpath((cwd / p).resolve(), root)

    # the archive is written under a temporary name and renamed when complete
    tmp = out.with_name(f".partial-{out.name}")
    try:
        with _working_dir(root):
            pack(
                files={k: rel(v) for k, v in files.items()},
                yaml_files={k: rel(v) for k, v in yaml_files.items()},
                outpath=str(tmp),
                option=sorted({rel(p) for p in options}),
            )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    logging.info(f"packed {out} (relative to {root}: {', '.join(sorted(map(rel, options)))})")
    return Path(outpath)


MODEL_CARD = """---
tags:
- espnet
- audio
- spoken-dialogue
- speech-to-speech
library_name: espnet
license: apache-2.0
---

# {repo}

An OSUM-EChat model trained with [espnet-echat](https://github.com/espnet/espnet), an ESPnet
plugin: Whisper-style encoder + adapter + causal LM answering in text and speech tokens{t2w}.

## Use

```python
from espnet2_echat.inference import Speech2Response

s2r = Speech2Response.from_pretrained("{repo}")
out = s2r(speech=wav, fs=16000, task="s2s", think="tag")
print(out.text, out.think)
```

## Results

{results}

## Training config

```yaml
{config}
```
"""


def build_hf_folder(packed: str, repo: str, out_dir: str) -> Path:
    """Unzip the archive into ``out_dir`` and write the model card: the repo as it will be."""
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    meta = check_archive(packed)  # names checked before anything is written
    with zipfile.ZipFile(packed) as z:
        z.extractall(out)
    config = (out / meta["yaml_files"]["train_config"]).read_text(encoding="utf-8")
    results = next(iter(out.rglob("RESULTS.md")), None)
    card = MODEL_CARD.format(
        repo=repo,
        t2w=" and a token2wav voice" if "token2wav_model_file" in meta["files"] else "",
        results=results.read_text(encoding="utf-8") if results else "(no RESULTS.md packed)",
        config=config.strip(),
    )
    (out / "README.md").write_text(card, encoding="utf-8")
    return out


def upload_to_hf(packed: str, repo: str, out_dir: str, dry_run: bool = True) -> Path:
    """Build the repo folder; push it with ``huggingface_hub`` unless ``dry_run``."""
    folder = build_hf_folder(packed, repo, out_dir)
    if dry_run:
        logging.info(f"dry run: {folder} holds what would be pushed to {repo}")
        return folder
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo, commit_message="Upload espnet-echat model")
    logging.info(f"pushed {folder} to https://huggingface.co/{repo}")
    return folder
