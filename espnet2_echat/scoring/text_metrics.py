"""WER and CER of normalised texts: the one entry the task scorers call."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Mapping, Optional

from espnet2_echat.scoring.normalize import (
    char_units,
    normalize_for_scoring,
    word_units,
)
from espnet2_echat.scoring.wer import score_with_python, score_with_sclite

_UNITS = {"wer": word_units, "cer": char_units}


def error_rates(
    refs: Mapping[str, str],
    hyps: Mapping[str, str],
    language: str = "auto",
    score_dir: Optional[Path] = None,
    utt2spk: Optional[Mapping[str, str]] = None,
) -> Dict[str, Optional[float]]:
    """WER and CER in percent of ``hyps`` against ``refs`` (keys of ``refs`` are scored).

    Both sides are normalised with :func:`normalize_for_scoring`; a missing hypothesis
    is empty. With ``score_dir`` the counts come from sclite, which writes
    ``score_dir/score_{wer,cer}/{ref.trn,hyp.trn,result.txt}`` as ESPnet does, and the
    Python edit distance cross-checks them (a mismatch is logged); without it only the
    Python edit distance runs. A rate is None when the references are all empty.
    """
    norm_refs = {u: normalize_for_scoring(t, language) for u, t in refs.items()}
    norm_hyps = {u: normalize_for_scoring(hyps.get(u, ""), language) for u in refs}
    rates: Dict[str, Optional[float]] = {}
    for name, units in _UNITS.items():
        ref_units = {u: units(t) for u, t in norm_refs.items()}
        hyp_units = {u: units(t) for u, t in norm_hyps.items()}
        python_total, _ = score_with_python(ref_units, hyp_units)
        if score_dir is None:
            rates[name] = python_total.rate()
            continue
        total, _ = score_with_sclite(
            ref_units, hyp_units, Path(score_dir) / f"score_{name}", utt2spk
        )
        if (total.errors, total.ref_len) != (python_total.errors, python_total.ref_len):
            logging.warning(
                "%s: sclite counts %d errors / %d units, the Python edit distance %d / %d",
                Path(score_dir) / f"score_{name}",
                total.errors,
                total.ref_len,
                python_total.errors,
                python_total.ref_len,
            )
        rates[name] = total.rate()
    return rates
