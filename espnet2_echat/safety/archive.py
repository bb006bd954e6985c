"""Extract model archives (ESPnet model zoo ``.zip`` / ``.tar*``) without writing outside.

ESPnet's ``pack_funcs.unpack`` extracts every member as named and rewrites the yaml files
``meta.yaml`` lists at the path it gives, so a member ``../../x``, an absolute name, a
member written through a symlink, or a ``yaml_files`` entry ``../x.yaml`` writes anywhere.
:func:`safe_unpack` checks the whole archive first and refuses it (never clamps a name)
when any member name, link target or ``meta.yaml`` path would leave the target folder;
it then extracts into a temporary sibling folder and renames it into place, so a failed
or interrupted unpack leaves no half-written model behind.
"""

import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Dict, Iterable, List, Tuple, Union

import yaml

META = "meta.yaml"
# Generous caps against decompression bombs; a 3B model with token2wav is ~10 GB.
MAX_TOTAL_BYTES = 64 * 1024**3
MAX_MEMBERS = 100_000


class UnsafeArchiveError(ValueError):
    """The archive names a path (member, link or meta.yaml entry) outside its target."""


def _inside(name: str, archive: str, what: str = "member") -> PurePosixPath:
    """A relative, normalised name that stays inside the target, or an error naming it."""
    if "\\" in name or "\x00" in name:
        raise UnsafeArchiveError(f"{archive}: {what} {name!r} has a backslash or NUL byte")
    path = PurePosixPath(name)
    if path.is_absolute() or (path.parts and path.parts[0].endswith(":")):
        raise UnsafeArchiveError(
            f"{archive}: {what} {name!r} is an absolute path; expected a path inside the archive"
        )
    if ".." in path.parts:
        raise UnsafeArchiveError(
            f"{archive}: {what} {name!r} contains '..'; expected a path inside the archive"
        )
    return PurePosixPath(*[p for p in path.parts if p not in ("", ".")])


def _members(archive_path: Path) -> Tuple[str, List[Tuple[str, str, str, int]]]:
    """("tar"|"zip", [(name, kind, link target, size)]) where kind is file/dir/symlink/hardlink."""
    found = []
    if zipfile.is_zipfile(archive_path):
        with zipfile.ZipFile(archive_path) as z:
            for info in z.infolist():
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    found.append((info.filename, "symlink", z.read(info).decode(), info.file_size))
                else:
                    kind = "dir" if info.is_dir() else "file"
                    found.append((info.filename, kind, "", info.file_size))
        return "zip", found
    try:
        tar = tarfile.open(archive_path)
    except tarfile.TarError as e:
        raise UnsafeArchiveError(f"{archive_path}: not a zip or tar archive ({e})") from e
    with tar:
        for m in tar.getmembers():
            if m.isfile():
                found.append((m.name, "file", "", m.size))
            elif m.isdir():
                found.append((m.name, "dir", "", 0))
            elif m.issym():
                found.append((m.name, "symlink", m.linkname, 0))
            elif m.islnk():
                found.append((m.name, "hardlink", m.linkname, 0))
            else:
                raise UnsafeArchiveError(
                    f"{archive_path}: member {m.name!r} is a device, fifo or other special file; "
                    "expected regular files, directories and links"
                )
    return "tar", found


def check_archive(archive_path: Union[str, Path]) -> Dict:
    """Check every member and the ``meta.yaml`` of a model archive; return meta.yaml's dict.

    Raises:
        UnsafeArchiveError: a name, link or meta path outside the target, a member written
            through a link, a special file, no meta.yaml, or more than the size caps.
    """
    archive_path = Path(archive_path)
    src = str(archive_path)
    kind, members = _members(archive_path)
    if len(members) > MAX_MEMBERS:
        raise UnsafeArchiveError(f"{src}: {len(members)} members (at most {MAX_MEMBERS})")
    total = sum(size for *_, size in members)
    if total > MAX_TOTAL_BYTES:
        raise UnsafeArchiveError(f"{src}: {total} bytes unpacked (at most {MAX_TOTAL_BYTES})")
    names = set()
    links = set()
    for name, what, target, _ in members:
        clean = _inside(name, src)
        names.add(clean)
        if what in ("symlink", "hardlink"):
            base = clean.parent if what == "symlink" else PurePosixPath()
            _inside(str(base / target), src, f"link {name!r} -> target")
            links.add(clean)
    for clean in names:
        for parent in clean.parents:
            if parent in links:
                raise UnsafeArchiveError(
                    f"{src}: member {str(clean)!r} is written through the link {str(parent)!r}"
                )
    if PurePosixPath(META) not in names:
        raise UnsafeArchiveError(f"{src}: no {META} at the top of the archive")
    meta = _read_member(archive_path, kind, META)
    if not isinstance(meta, dict):
        raise UnsafeArchiveError(f"{src}: {META} is not a mapping")
    for section in ("yaml_files", "files"):
        entries = meta.get(section)
        if not isinstance(entries, dict):
            raise UnsafeArchiveError(f"{src}: {META} has no {section!r} mapping")
        for key, value in entries.items():
            clean = _inside(str(value), src, f"{META} {section}.{key}")
            if clean not in names:
                raise UnsafeArchiveError(
                    f"{src}: {META} {section}.{key} names {value!r}, which is not in the archive"
                )
    return meta


def _read_member(archive_path: Path, kind: str, name: str):
    if kind == "zip":
        with zipfile.ZipFile(archive_path) as z:
            return yaml.safe_load(z.read(name))
    with tarfile.open(archive_path) as tar:
        for m in tar.getmembers():
            if str(PurePosixPath(m.name)) == name and m.isfile():
                return yaml.safe_load(tar.extractfile(m))
    raise UnsafeArchiveError(f"{archive_path}: {name} is not a regular file")


def _extract(archive_path: Path, out: Path) -> None:
    if zipfile.is_zipfile(archive_path):
        with zipfile.ZipFile(archive_path) as z:
            z.extractall(out)  # names were checked; zipfile creates no links
    else:
        with tarfile.open(archive_path) as tar:
            tar.extractall(out, filter="data")  # second line of defence


def _rewrite_yaml(
    tmp: Path, final: Path, yaml_files: Iterable[str], members: Iterable[str]
) -> None:
    """ESPnet's unpack behaviour: archive paths inside the configs (extracted in ``tmp``)
    become absolute paths under ``final``."""
    from espnet2.main_funcs.pack_funcs import find_path_and_change_it_recursive

    members = list(members)
    for rel in yaml_files:
        path = tmp / rel
        with path.open(encoding="utf-8") as f:
            d = yaml.safe_load(f)
        for name in members:
            d = find_path_and_change_it_recursive(d, name, str(final / name))
        staged = path.with_name(path.name + ".tmp")
        with staged.open("w", encoding="utf-8") as f:
            yaml.safe_dump(d, f)
        os.replace(staged, path)


def _files_of(out: Path, meta: Dict) -> Dict[str, str]:
    items = list(meta["yaml_files"].items()) + list(meta["files"].items())
    return {k: str(out / v) for k, v in items}


def safe_unpack(archive_path: Union[str, Path], outdir: Union[str, Path]) -> Dict[str, str]:
    """Check, then extract ``archive_path`` into ``outdir``; return ESPnet's unpack dict
    (``{"train_config": path, "model_file": path, ...}``).

    An ``outdir`` holding a complete earlier unpack (``meta.yaml`` and every file it names)
    is reused. Extraction goes to a temporary sibling renamed into place when complete.
    """
    archive_path, out = Path(archive_path), Path(outdir).absolute()
    meta = check_archive(archive_path)
    if (out / META).is_file():
        cached = yaml.safe_load((out / META).read_text(encoding="utf-8"))
        if cached == meta and all(Path(p).exists() for p in _files_of(out, meta).values()):
            return _files_of(out, meta)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".unpacking", dir=out.parent))
    try:
        _extract(archive_path, tmp)
        members = [str(p.relative_to(tmp)) for p in tmp.rglob("*") if not p.is_dir()]
        _rewrite_yaml(tmp, out, meta["yaml_files"].values(), members)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _files_of(out, meta)
