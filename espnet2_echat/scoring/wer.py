"""WER/CER with NIST sclite in ESPnet's result format, and a pure-Python cross-check.

``score_with_sclite`` writes ``ref.trn`` / ``hyp.trn`` (``tokens (spk-uttid)``, as
ESPnet's ``asr.sh`` does) and ``result.txt`` (``sclite ... -o all stdout``) into a
``score_wer`` or ``score_cer`` folder, and reads the error counts back from sclite's
per-utterance alignment dump. ``edit_distance`` is a small dynamic program with sclite's
default costs (substitution 4, insertion 3, deletion 3) so that both agree; it runs where
sclite is missing only when the caller asks for it (no silent fallback).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

# sclite's default alignment costs (sclite -h: "cost: sub 4, ins 3, del 3").
_SUB_COST, _INS_COST, _DEL_COST = 4, 3, 3
_RE_SCORES = re.compile(r"^Scores: \(#C #S #D #I\)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)")
_RE_ID = re.compile(r"^id: \((.*)\)\s*$")


@dataclass
class ErrorCounts:
    """Edit operations of one utterance or a whole set."""

    correct: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    sentences: int = 0
    sentence_errors: int = 0

    @property
    def ref_len(self) -> int:
        """Number of reference units (correct + substituted + deleted)."""
        return self.correct + self.substitutions + self.deletions

    @property
    def errors(self) -> int:
        """Substitutions + deletions + insertions."""
        return self.substitutions + self.deletions + self.insertions

    def rate(self) -> Optional[float]:
        """Error rate in percent; ``None`` when the reference is empty (undefined)."""
        if self.ref_len == 0:
            return None
        return 100.0 * self.errors / self.ref_len

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(*(a + b for a, b in zip(_fields(self), _fields(other))))

    def as_dict(self) -> Dict[str, float]:
        """Counts plus the error rate (``None`` when undefined)."""
        return {
            **asdict(self),
            "ref_len": self.ref_len,
            "errors": self.errors,
            "rate": self.rate(),
        }


def _fields(c: ErrorCounts) -> Tuple[int, ...]:
    return (
        c.correct,
        c.substitutions,
        c.deletions,
        c.insertions,
        c.sentences,
        c.sentence_errors,
    )


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> ErrorCounts:
    """Align two token lists with sclite's costs and count the edit operations."""
    n, m = len(ref), len(hyp)
    # cost[i][j]: cheapest alignment of ref[:i] and hyp[:j]; op[i][j]: last operation.
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    op = [[""] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0], op[i][0] = i * _DEL_COST, "D"
    for j in range(1, m + 1):
        cost[0][j], op[0][j] = j * _INS_COST, "I"
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            # sclite compares case-insensitively unless given -s; so do we.
            same = ref[i - 1].lower() == hyp[j - 1].lower()
            candidates = (
                (cost[i - 1][j - 1] + (0 if same else _SUB_COST), "C" if same else "S"),
                (cost[i - 1][j] + _DEL_COST, "D"),
                (cost[i][j - 1] + _INS_COST, "I"),
            )
            cost[i][j], op[i][j] = min(candidates, key=lambda t: t[0])
    counts = {"C": 0, "S": 0, "D": 0, "I": 0}
    i, j = n, m
    while i > 0 or j > 0:
        o = op[i][j]
        counts[o] += 1
        if o in "CS":
            i, j = i - 1, j - 1
        elif o == "D":
            i -= 1
        else:
            j -= 1
    errors = counts["S"] + counts["D"] + counts["I"]
    return ErrorCounts(
        counts["C"], counts["S"], counts["D"], counts["I"], 1, int(errors > 0)
    )


def score_with_python(
    refs: Mapping[str, Sequence[str]], hyps: Mapping[str, Sequence[str]]
) -> Tuple[ErrorCounts, Dict[str, ErrorCounts]]:
    """Total and per-utterance counts with :func:`edit_distance` (keys of ``refs``)."""
    per_utt = {utt: edit_distance(refs[utt], hyps.get(utt, [])) for utt in refs}
    return sum(per_utt.values(), ErrorCounts()), per_utt


def find_sclite() -> Optional[str]:
    """Path of the sclite binary: ``$PATH``, Debian's ``/usr/lib/sctk/bin`` or Kaldi's."""
    candidates = [shutil.which("sclite"), "/usr/lib/sctk/bin/sclite"]
    if os.environ.get("KALDI_ROOT"):
        candidates.append(
            os.path.join(os.environ["KALDI_ROOT"], "tools/sctk/bin/sclite")
        )
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    return None


def _trn_id(utt: str, utt2spk: Optional[Mapping[str, str]]) -> str:
    spk = utt2spk.get(utt, utt) if utt2spk else utt
    return f"{spk}-{utt}"


def write_trn(
    path: Path,
    tokens: Mapping[str, Sequence[str]],
    utts: Sequence[str],
    utt2spk: Optional[Mapping[str, str]] = None,
) -> None:
    """Write an ESPnet/sclite ``trn`` file: ``tok tok ... (spk-uttid)`` per line."""
    with open(path, "w", encoding="utf-8") as f:
        for utt in utts:
            f.write(" ".join(tokens.get(utt, [])) + f" ({_trn_id(utt, utt2spk)})\n")


def score_with_sclite(
    refs: Mapping[str, Sequence[str]],
    hyps: Mapping[str, Sequence[str]],
    out_dir: Path,
    utt2spk: Optional[Mapping[str, str]] = None,
    sclite: Optional[str] = None,
) -> Tuple[ErrorCounts, Dict[str, ErrorCounts]]:
    """Score with sclite; writes ``ref.trn``, ``hyp.trn``, ``result.txt`` under ``out_dir``.

    Units must not contain whitespace. A hypothesis missing for an utterance counts as
    empty. Returns the set counts and the per-utterance counts read from sclite.

    Raises:
        FileNotFoundError: no sclite binary (install Debian's ``sctk``).
        RuntimeError: sclite failed or its output lacks an utterance.
    """
    sclite = sclite or find_sclite()
    if sclite is None:
        raise FileNotFoundError(
            "sclite not found in $PATH, /usr/lib/sctk/bin or $KALDI_ROOT/tools/sctk/bin; "
            "install Debian's sctk (make setup does)"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    utts = sorted(refs)
    write_trn(out_dir / "ref.trn", refs, utts, utt2spk)
    write_trn(out_dir / "hyp.trn", hyps, utts, utt2spk)
    cmd = [
        sclite,
        "-r",
        "ref.trn",
        "trn",
        "-h",
        "hyp.trn",
        "trn",
        "-i",
        "rm",
        "-o",
        "all",
        "stdout",
    ]
    proc = subprocess.run(
        cmd, cwd=out_dir, capture_output=True, text=True, encoding="utf-8"
    )
    (out_dir / "result.txt").write_text(proc.stdout, encoding="utf-8")
    if proc.returncode != 0:
        raise RuntimeError(
            f"sclite failed in {out_dir} (rc {proc.returncode}): {proc.stderr[-500:]}"
        )
    per_id = _parse_pra(proc.stdout)
    per_utt: Dict[str, ErrorCounts] = {}
    for utt in utts:
        trn_id = _trn_id(utt, utt2spk)
        if trn_id.lower() not in per_id:
            raise RuntimeError(
                f"{out_dir / 'result.txt'}: sclite reported no alignment for ({trn_id})"
            )
        per_utt[utt] = per_id[trn_id.lower()]
    return sum(per_utt.values(), ErrorCounts()), per_utt


def _parse_pra(text: str) -> Dict[str, ErrorCounts]:
    """Read ``id: (...)`` / ``Scores: (#C #S #D #I) c s d i`` pairs of sclite's dump."""
    result: Dict[str, ErrorCounts] = {}
    current: Optional[str] = None
    for line in text.splitlines():
        m = _RE_ID.match(line)
        if m:
            current = m.group(1).lower()  # sclite lower-cases utterance ids
            continue
        m = _RE_SCORES.match(line)
        if m and current is not None:
            c, s, d, i = (int(x) for x in m.groups())
            result[current] = ErrorCounts(c, s, d, i, 1, int(s + d + i > 0))
            current = None
    return result


def summary_lines(result_txt: Path) -> List[str]:
    """The ``SPKR`` header and ``Sum/Avg`` line of ``result.txt`` (what ESPnet's RESULTS.md
    shows)."""
    lines = Path(result_txt).read_text(encoding="utf-8").splitlines()
    return [ln for ln in lines if "SPKR" in ln or "Sum/Avg" in ln][:2]
