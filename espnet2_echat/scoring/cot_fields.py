"""Per-field accuracy of the label-based CoT ("tag think", docs/labels.md#tag-think) a model
generated.

The ``think`` output of a decode dir is parsed with
:func:`espnet2_echat.data.cot.parse_tag_think` (the data side's parser, so both sides
read one format). Each field is compared with the data dir's reference:

=================  ==========================  ===================================
CoT field          reference file              metric
=================  ==========================  ===================================
user transcript    ``text``                    ``cot_transcript_wer`` / ``_cer``
age                ``utt2age``                 ``cot_age_accuracy``
gender             ``utt2gender``              ``cot_gender_accuracy``
emotion            ``utt2emotion``             ``cot_emotion_accuracy``
sound event        ``utt2event``               ``cot_event_accuracy``
reply emotion      ``reply_emotion``           ``cot_reply_emotion_accuracy``
=================  ==========================  ===================================

``cot_parsed_rate`` is the percentage of utterances whose CoT has all six fields. A
field the model left out or malformed counts as wrong; utterances whose reference label
is unknown (``<&&>``) or absent are left out of that field's accuracy.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

from espnet2_echat.data.cot import parse_tag_think
from espnet2_echat.data.labels import UNKNOWN_LABEL, normalize_label
from espnet2_echat.data.task_registry import LABEL_BY_KIND
from espnet2_echat.scoring.classification import NO_LABEL, classify
from espnet2_echat.scoring.text_metrics import error_rates

# CoT field -> (label kind, data-dir reference file)
LABEL_FIELDS: Dict[str, Tuple[str, str]] = {
    kind: (kind, LABEL_BY_KIND[kind].file)
    for kind in ("age", "gender", "emotion", "event", "reply_emotion")
}
_ALL_FIELDS = ("q_txt",) + tuple(LABEL_FIELDS)


def _canonical(kind: str, value: Optional[str]) -> str:
    if value is None:
        return NO_LABEL
    try:
        return normalize_label(kind, value)
    except ValueError:
        return NO_LABEL


def score_tag_think(
    think: Mapping[str, str],
    references: Mapping[str, Mapping[str, str]],
    utts: Sequence[str],
) -> Dict[str, float]:
    """Per-field metrics of generated tag-think CoTs.

    Args:
        think: ``uttid -> generated CoT`` (a missing utterance counts as unparsed).
        references: data-dir file name (``text``, ``utt2age`` ...) -> ``uttid -> value``;
            files that are absent are simply not scored.
        utts: the utterances to score.
    """
    if not utts:
        raise ValueError("score_tag_think: no utterances")
    parsed = {utt: parse_tag_think(think.get(utt, "")) for utt in utts}
    complete = sum(all(parsed[u][f] is not None for f in _ALL_FIELDS) for u in utts)
    metrics: Dict[str, float] = {"cot_parsed_rate": 100.0 * complete / len(utts)}
    if "text" in references:
        refs = {u: references["text"][u] for u in utts if u in references["text"]}
        hyps = {u: parsed[u]["q_txt"] or "" for u in refs}
        if refs:
            rates = error_rates(refs, hyps)
            metrics.update({f"cot_transcript_{k}": v for k, v in rates.items()})
    for field, (kind, ref_file) in LABEL_FIELDS.items():
        ref_map = references.get(ref_file)
        if ref_map is None:
            continue
        scored = [u for u in utts if u in ref_map and ref_map[u] != UNKNOWN_LABEL]
        if not scored:
            continue
        result = classify(
            kind,
            [normalize_label(kind, ref_map[u]) for u in scored],
            [_canonical(kind, parsed[u][field]) for u in scored],
        )
        metrics[f"cot_{field}_accuracy"] = result.accuracy
    return metrics
