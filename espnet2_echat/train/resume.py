"""Resuming after a kill that hit the checkpoint write.

ESPnet's trainer writes ``checkpoint.pth`` in place at each (short) epoch end; a run killed
during that write leaves a truncated file that ``--resume true`` cannot read, and the stage
could never be re-run. Such a file is moved aside with a warning, so the re-run starts the
stage again from its initial model instead of failing.
"""

import logging
import time
import zipfile
from pathlib import Path


def discard_corrupt_checkpoint(output_dir: str) -> bool:
    """Move ``output_dir/checkpoint.pth`` aside if it is not a complete torch zip archive.

    Returns True when a file was moved.
    """
    path = Path(output_dir) / "checkpoint.pth"
    if not path.is_file() or zipfile.is_zipfile(path):
        return False
    aside = path.with_name(f"checkpoint.pth.corrupt-{int(time.time())}")
    try:
        path.rename(aside)
    except FileNotFoundError:  # another worker moved it first
        return False
    logging.warning(
        f"{path} is truncated (killed while it was written): moved to {aside.name}; "
        "the stage restarts from its initial model"
    )
    return True
