"""``--help`` of the ESPnet-task CLIs (``echat_train``, ``token2wav_train``) without ESPnet.

ESPnet builds a task's parser in ``espnet2.tasks.abs_task``, and importing that module
imports torch, transformers and ESPnet's layer zoo: 6-10 s before argparse can print a line.
The parser itself is what ESPnet makes of the task's class choices, so the help text is
stored (``task_help_text/<cli>.txt``, written by this module from the real parser at 100
columns) and printed when a CLI is called with ``--help`` alone, the installed ESPnet is
the version the text was made with and the task modules (``tasks/*.py``) are unchanged
since (a hash of their sources). When the stored text is stale, the parser's help is made
once (slow), printed, and kept under ``$ECHAT_CACHE_DIR/task_help/`` (default
``~/.cache/espnet_echat``) for the next ``--help``. Parsing of every other command line is
the real parser's. ``tests/bin/test_cli_help.py`` checks that each
stored text equals what the task's parser prints now; after changing a task's options run
``python -m espnet2_echat.task_help`` to rewrite them.
"""

from __future__ import annotations

import hashlib
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Optional, Sequence

HELP_DIR = Path(__file__).resolve().parent / "task_help_text"
COLUMNS = 100
_HEADER = "# espnet=="


def _espnet_version() -> str:
    try:
        return metadata.version("espnet")
    except metadata.PackageNotFoundError:
        return "unknown"


def _stamp() -> str:
    """The header a stored text must carry: ESPnet's version and the task sources' hash."""
    digest = hashlib.sha256()
    for path in sorted((Path(__file__).resolve().parent / "tasks").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"{_HEADER}{_espnet_version()} tasks={digest.hexdigest()[:16]}"


def stored_help(cli: str) -> Optional[str]:
    """The stored help of ``cli``, or ``None`` when absent or made for another ESPnet."""
    path = HELP_DIR / f"{cli}.txt"
    if not path.is_file():
        return None
    header, _, text = path.read_text(encoding="utf-8").partition("\n")
    if header != _stamp():
        return None
    return text


def _cached_path(cli: str) -> Path:
    """Where a help text made at run time is kept, keyed by the stamp."""
    root = Path(os.environ.get("ECHAT_CACHE_DIR") or Path.home() / ".cache" / "espnet_echat")
    key = hashlib.sha256(_stamp().encode()).hexdigest()[:16]
    return root / "task_help" / f"{cli}-{key}.txt"


def answer_help(cli: str, cmd: Optional[Sequence[str]]) -> None:
    """Print the help and exit 0 (as argparse does) when ``cmd`` is ``--help`` alone.

    The stored text when current, else the run-time cache, else the parser's (then cached).
    """
    args = list(sys.argv[1:] if cmd is None else cmd)
    if args not in (["-h"], ["--help"]):
        return
    text = stored_help(cli)
    if text is None:
        cached = _cached_path(cli)
        if cached.is_file():
            text = cached.read_text(encoding="utf-8")
        else:
            text = live_help(cli)
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_text(text, encoding="utf-8")
            except OSError:
                pass  # a read-only home: the help is still printed, just not kept
    sys.stdout.write(text)
    raise SystemExit(0)


def live_help(cli: str) -> str:
    """What the task's real parser prints for ``--help`` at :data:`COLUMNS` columns."""
    if cli == "echat_train":
        from espnet2_echat.tasks.echat import EChatTask as task
    elif cli == "token2wav_train":
        from espnet2_echat.tasks.token2wav import Token2WavTask as task
    else:
        raise ValueError(f"no stored help for {cli!r}; known: echat_train, token2wav_train")
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(COLUMNS)
    try:
        parser = task.get_parser()
        parser.prog = f"{cli}.py"
        return parser.format_help()
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


TASK_CLIS = ("echat_train", "token2wav_train")


def write_all() -> None:
    """Rewrite every stored help text from the real parsers."""
    HELP_DIR.mkdir(exist_ok=True)
    for cli in TASK_CLIS:
        text = _stamp() + "\n" + live_help(cli)
        (HELP_DIR / f"{cli}.txt").write_text(text, encoding="utf-8")
        print(f"wrote {HELP_DIR / f'{cli}.txt'}")


if __name__ == "__main__":
    write_all()
