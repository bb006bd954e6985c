"""Pack a trained model in ESPnet's model zoo format and publish it on the Hugging Face hub.

ESPnet's ``espnet2.bin.pack`` has a fixed list of tasks, so this calls its library function
``pack_funcs.pack`` with the keys ``Speech2Response`` takes (``train_config``, ``model_file``,
``token2wav_train_config``, ``token2wav_model_file``). Local files a config names (the LLM
config dir, the tokenizer, the prompt config, the speaker prompt) are packed under the same
relative path, so that ``unpack`` and ``resolve_path`` find them again.
"""

import logging
import shutil
import zipfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import yaml


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
    """Relative paths inside the working directory that a config's model keys name
    (the LLM config dir, the tokenizer, the prompt config...); data and output dirs are not."""
    with open(config_file, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    model_part = {k: v for k, v in config.items() if k not in NOT_MODEL_FILES}
    found = []
    for value in _strings(model_part):
        path = Path(value)
        if value and not path.is_absolute() and ".." not in path.parts and path.exists():
            if str(path) not in (".", "") and path.resolve() != Path(config_file).resolve():
                found.append(str(path))
    return sorted(set(found))


def pack_model(
    train_config: str,
    model_file: str,
    outpath: str,
    token2wav_train_config: Optional[str] = None,
    token2wav_model_file: Optional[str] = None,
    results: Optional[str] = None,
    extra: Iterable[str] = (),
) -> Path:
    """Write the archive (``.zip``/``.tgz``...) and return its path."""
    from espnet2.main_funcs.pack_funcs import pack

    files: Dict[str, str] = {"model_file": model_file}
    yaml_files: Dict[str, str] = {"train_config": train_config}
    options = set(referenced_paths(train_config)) | set(extra)
    if token2wav_train_config:
        if not token2wav_model_file:
            raise ValueError("token2wav_train_config given without token2wav_model_file")
        yaml_files["token2wav_train_config"] = token2wav_train_config
        files["token2wav_model_file"] = token2wav_model_file
        options |= set(referenced_paths(token2wav_train_config))
    if results:
        options.add(results)
    for image_dir in {Path(train_config).parent / "images"}:
        if image_dir.is_dir():
            options.add(str(image_dir))
    Path(outpath).parent.mkdir(parents=True, exist_ok=True)
    pack(files=files, yaml_files=yaml_files, outpath=outpath, option=sorted(options))
    logging.info(f"packed {outpath} ({', '.join(sorted(options))})")
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
    with zipfile.ZipFile(packed) as z:
        z.extractall(out)
    with open(out / "meta.yaml", encoding="utf-8") as f:
        meta = yaml.safe_load(f)
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
