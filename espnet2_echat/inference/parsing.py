"""Split generated ids into reply text ids and speech tokens (docs/decoding.md#parsing).

Input ids are unified (text ``< V``, speech ``V + k``). The parser keeps every text id
before ``<|im_end|>`` and the speech ids between the begin/end markers. With
``reference_compat`` (the ``reference_parsing`` switch) the reference callers' parsing of
``decoding_quirks.reference_parse`` is used instead.
"""

from dataclasses import dataclass
from typing import List, Sequence

from espnet2_echat.data.speech_ids import SpeechIds
from espnet2_echat.data.templates import IM_END_ID
from espnet2_echat.inference import decoding_quirks


@dataclass
class ParsedIds:
    """Reply parts of one generation."""

    token_int: List[int]  # every text-phase id (CoT included), without <|im_end|>
    text_ids: List[int]  # the ids the reply text is decoded from
    speech_tokens: List[int]  # raw speech ids 0..K-1, no markers


def parse_generation(
    ids: Sequence[int],
    task_kind: str,
    speech_ids: SpeechIds,
    reference_compat: bool = False,
    im_end_id: int = IM_END_ID,
) -> ParsedIds:
    """Parse one row of :func:`espnet2_echat.inference.decoder.generate`.

    Args:
        ids: unified generated ids.
        task_kind: ``text`` (text reply only), ``s2s`` (text, ``<|im_end|>``, speech),
            ``tts`` (speech only) or ``joint`` (interleaved text and speech ids).
        speech_ids: the model's id scheme.
        reference_compat: reproduce the reference's parsing (see the module docstring).
        im_end_id: the tokenizer's ``<|im_end|>`` (Qwen2.5's by default).

    Raises:
        ValueError: reference_compat S2S output without ``<|im_end|>`` (the reference
            crashes there with an index error).
    """
    if reference_compat:
        parsed = decoding_quirks.reference_parse(ids, task_kind, speech_ids, im_end_id)
        if parsed is not None:
            return ParsedIds(*parsed)
    ids = list(ids)
    text = [i for i in ids if not speech_ids.is_speech(i)]
    speech = speech_ids.speech_ids_of(ids)
    if im_end_id in text:
        text = text[: text.index(im_end_id)]
    return ParsedIds(text, text, strip_markers(speech, speech_ids.marker))


def strip_markers(speech: Sequence[int], marker: int) -> List[int]:
    """Speech ids between a leading begin marker (optional) and the end marker."""
    speech = list(speech)
    if speech and speech[0] == marker:
        speech = speech[1:]
    if marker in speech:
        speech = speech[: speech.index(marker)]
    return speech
