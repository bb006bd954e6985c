"""Per-sample label indices for the auxiliary label heads (``models.label_heads``)."""

from typing import Mapping, Sequence, Tuple

import numpy as np

from espnet2_echat.data.labels import LABEL_SETS, UNKNOWN_LABEL, normalize_label
from espnet2_echat.data.task_registry import LABEL_BY_KIND
from espnet2_echat.data.templates import IGNORE_ID

LABEL_AUX_KINDS: Tuple[str, ...] = ("age", "gender", "emotion", "event")


def check_kinds(kinds: Sequence[str]) -> Tuple[str, ...]:
    """``kinds`` as a tuple, each a label kind with a closed label set."""
    bad = [k for k in kinds if k not in LABEL_BY_KIND or k not in LABEL_SETS]
    if bad or not kinds:
        raise ValueError(
            f"label_aux_kinds must be label kinds of {sorted(LABEL_SETS)}, got {list(kinds)}"
        )
    return tuple(kinds)


def label_indices(uid: str, data: Mapping, kinds: Sequence[str]) -> np.ndarray:
    """Per kind, the index of the sample's label in its label set, ``IGNORE_ID`` where the
    sample has none (no ``utt2<kind>`` entry) or it is unknown (``<&&>``)."""
    out = np.full(len(kinds), IGNORE_ID, dtype=np.int64)
    for j, kind in enumerate(kinds):
        value = data.get(LABEL_BY_KIND[kind].file)
        if value is None:
            continue
        try:
            label = normalize_label(kind, str(value), allow_unknown=True)
        except ValueError as e:
            raise ValueError(f"{uid}: {LABEL_BY_KIND[kind].file}: {e}") from None
        if label != UNKNOWN_LABEL:
            out[j] = LABEL_SETS[kind][0].index(label)
    return out
