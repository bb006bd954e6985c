"""Fetch a packed model by name, URL or local path into a cache the user chooses.

``espnet_model_zoo``'s ``ModelDownloader`` caches inside its own package folder (the
virtual environment) when that is writable, unpacks with ESPnet's unchecked ``unpack``
and checks a download only against a ``Content-MD5`` header. Here a download is written
to a temporary name, checked against the size the server announced (``Content-Length``),
its ``Content-MD5`` and a SHA-256 the caller gives (``URL#sha256=HEX`` or ``sha256=``),
and renamed only when every check passes; archives are extracted by
:func:`~espnet2_echat.safety.archive.safe_unpack`. Hugging Face snapshots are verified by
``huggingface_hub`` itself; their ``meta.yaml`` paths are checked to stay inside.
"""

import base64
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Dict, Optional, Union

from espnet2_echat.safety.archive import UnsafeArchiveError, _inside, safe_unpack

CACHE_ENV = "ECHAT_CACHE_DIR"
# an ESPnet model-zoo table (espnet_model_zoo's table.csv layout: name and url columns) to
# look names up in instead of the one installed with espnet_model_zoo
ZOO_TABLE_ENV = "ECHAT_MODEL_ZOO_TABLE"
HF_URLS = ("https://huggingface.co/", "https://huggingface.co", "huggingface.co")


class DownloadCheckError(RuntimeError):
    """A download does not have the announced size or hash."""


def default_cachedir() -> Path:
    """``$ECHAT_CACHE_DIR``, else ``$XDG_CACHE_HOME/espnet_echat`` (``~/.cache/...``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "espnet_echat"


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def checked_download(
    url: str, dest: Union[str, Path], sha256: Optional[str] = None, timeout: float = 30.0
) -> Path:
    """Download ``url`` to ``dest`` (via a temporary name); check size and hashes."""
    import requests

    if "#sha256=" in url:
        url, sha256 = url.split("#sha256=", 1)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
    try:
        with os.fdopen(fd, "wb") as f, requests.get(url, stream=True, timeout=timeout) as r:
            r.raise_for_status()
            for chunk in r.iter_content(chunk_size=1 << 20):
                f.write(chunk)
                sha.update(chunk)
                md5.update(chunk)
                size += len(chunk)
            announced = r.headers.get("Content-Length")
            content_md5 = r.headers.get("Content-MD5")
        if announced is not None and "Content-Encoding" not in r.headers and int(announced) != size:
            raise DownloadCheckError(f"{url}: got {size} bytes, the server announced {announced}")
        if content_md5 and content_md5 not in (
            md5.hexdigest(),
            base64.b64encode(md5.digest()).decode(),
        ):
            raise DownloadCheckError(f"{url}: MD5 {md5.hexdigest()} != Content-MD5 {content_md5}")
        if sha256 and sha.hexdigest() != sha256.lower():
            raise DownloadCheckError(f"{url}: SHA-256 {sha.hexdigest()} != expected {sha256}")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _hf_files(snapshot: Path) -> Dict[str, str]:
    """The unpack dict of a Hugging Face snapshot, after checking its meta.yaml paths."""
    import yaml
    from espnet_model_zoo.downloader import ModelDownloader

    meta = yaml.safe_load((snapshot / "meta.yaml").read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise UnsafeArchiveError(f"{snapshot}/meta.yaml is not a mapping")
    for section in ("yaml_files", "files"):
        for key, value in (meta.get(section) or {}).items():
            _inside(str(value), str(snapshot), f"meta.yaml {section}.{key}")
    return ModelDownloader._unpack_cache_dir_for_huggingfase(str(snapshot))


def zoo_table_url(name: str, table: Optional[Union[str, Path]] = None) -> Optional[str]:
    """The url the ESPnet model-zoo table gives ``name`` (its latest version), by
    espnet_model_zoo's own lookup (``ModelDownloader.get_url``), or None when the table
    has no such name. ``table``: a table.csv (default ``$ECHAT_MODEL_ZOO_TABLE``, else the
    one installed with espnet_model_zoo; never downloaded here)."""
    import pandas as pd
    from espnet_model_zoo import downloader

    table = Path(table or os.environ.get(ZOO_TABLE_ENV) or
                 Path(downloader.__file__).parent / "table.csv")
    if not table.is_file():
        return None
    lookup = downloader.ModelDownloader.__new__(downloader.ModelDownloader)
    lookup.data_frame = pd.read_csv(table, dtype=str)  # what its __init__ reads
    if not (lookup.data_frame["name"] == name).any():
        return None
    return lookup.get_url(name=name)


def fetch_packed_model(
    tag: str, cachedir: Optional[Union[str, Path]] = None, sha256: Optional[str] = None
) -> Dict[str, str]:
    """``{"train_config": ..., "model_file": ..., ...}`` of a packed model given as a local
    archive, an ``http(s)://`` URL, an ESPnet model-zoo table name (:func:`zoo_table_url`:
    its url, local archive or Hugging Face entry) or a Hugging Face repo name
    (``owner/name[@rev]``), unpacked under ``cachedir`` (default :func:`default_cachedir`)
    with every download and archive checked."""
    cache = Path(cachedir).expanduser() if cachedir else default_cachedir()
    cache.mkdir(parents=True, exist_ok=True)
    local = Path(tag)
    if not local.exists() and not tag.startswith(("http://", "https://")):
        url = zoo_table_url(tag)
        if url is not None and url not in HF_URLS:
            tag, local = url, Path(url)  # the table's archive: fetched as if given
    if local.is_file():
        return safe_unpack(local, cache / _key(str(local.resolve())))
    if tag.startswith(("http://", "https://")):
        base = tag.split("#", 1)[0]
        name = Path(base.split("?", 1)[0]).name or "model.zip"
        folder = cache / _key(base)
        archive = folder.with_name(folder.name + "-" + name)
        if not archive.is_file():
            checked_download(tag, archive, sha256)
        return safe_unpack(archive, folder)
    if tag.count("/") == 1 and not local.exists():
        from huggingface_hub import snapshot_download

        repo, _, revision = tag.partition("@")
        snapshot = snapshot_download(
            repo, revision=revision or None, cache_dir=str(cache), library_name="espnet"
        )
        return _hf_files(Path(snapshot))
    raise FileNotFoundError(
        f"{tag}: not a model dir, a packed archive, an http(s) URL, a name in the ESPnet "
        f"model-zoo table (${ZOO_TABLE_ENV} or espnet_model_zoo's table.csv) or a Hugging "
        "Face repo name (owner/name)"
    )
