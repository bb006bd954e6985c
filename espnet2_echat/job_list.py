"""Job lists of the batch CLIs (``echat_inference --jobs``, ``echat_score --jobs``).

One job a line, its fields separated by whitespace (so no field holds a space); blank lines
and ``#`` comments are skipped. A recipe stage that decodes or scores many data dirs writes
one list and starts one process, which loads its model (or its imports) once for all dirs.
"""

from pathlib import Path
from typing import Callable, List, Sequence, TypeVar

Job = TypeVar("Job")


def read_job_list(
    path: str, fields: Sequence[str], make: Callable[[List[str]], Job], more: str = ""
) -> List[Job]:
    """Every job of the list at ``path``, each ``make(fields of its line)``.

    A line has the ``fields`` named (in that order), and any number of further ones when
    ``more`` names them (e.g. ``"PATH,NAME,TYPE ..."``). Every line is checked before a job
    runs: a wrong count, or a ``ValueError``/``KeyError`` of ``make``, is raised as a
    ``ValueError`` naming the file and the line.
    """
    usage = " ".join(fields) + (f" {more}" if more else "")
    jobs = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        items = line.split()
        try:
            if len(items) < len(fields) or (not more and len(items) > len(fields)):
                raise ValueError(f"expected {usage}, got {len(items)} fields")
            jobs.append(make(items))
        except (ValueError, KeyError) as e:
            raise ValueError(f"{path}:{n}: {e}") from e
    if not jobs:
        raise ValueError(f"{path}: no job (expected lines of {usage})")
    return jobs
