"""Named switches for the reference's behaviours that this package fixes by default.

Each switch reproduces one behaviour of the original OSUM-EChat code (``docs/differences.md``
lists them with the reason each is a bug). ``reference_compat`` is only a preset that turns
every switch on, so the released weights behave exactly as published; the old
``reference_compat`` arguments of the parts remain as aliases of their own switches.

============================================  ==============================================
switch                                        part that reads it
============================================  ==============================================
``encoder_mask_subsampling``                  ``models.whisper_encoder.WhisperStyleEncoder``
``understanding_prompt_typo``                 ``data.layout_quirks.system_variant`` (inference)
``s2t_think_without_user_start``              ``data.layout_quirks.system_variant`` (inference)
``multiturn_reference_layout``                ``data.layout_quirks.history/history_prompt``
``text_history_doubled_im_end``               ``data.layout_quirks.after_text_history_user``
``s2s_stop_at_text_budget``                   ``inference.decoding_quirks.use_reference_stops``
                                              (``decoder.build_plan``)
``reference_parsing``                         ``inference.decoding_quirks.reference_parse``,
                                              ``.remembered_reply`` (conversation memory)
``reference_decoding_defaults``               ``inference.decoding_quirks.reference_options``
``reference_instructions``                    ``inference.decoding_quirks.reference_instructions``
                                              (ignores the trained prompt config)
``token2wav_reference_streaming``             ``inference.decoding_quirks.REFERENCE_STREAMING``
                                              (34-frame flow cache, first hop of 50 tokens)
============================================  ==============================================
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional, Union


@dataclass(frozen=True)
class ReferenceQuirks:
    """Which reference behaviours to reproduce (all off: the fixed default).

    Attributes:
        encoder_mask_subsampling: subsample the encoder's padding mask as WeNet's
            ``mask[:, :, 2::2]`` does in a padded batch (shorter utterances lose a frame).
        understanding_prompt_typo: the typo'd system prompt of the reference's inference
            for understanding tasks.
        s2t_think_without_user_start: S2T-think prompts without ``<|im_start|>user``.
        multiturn_reference_layout: the multi-turn layout of the reference's
            ``generate_s2s_no_stream_multi_turn`` instead of the training layout.
        text_history_doubled_im_end: training samples whose past turns are transcripts
            get the reference's doubled ``<|im_end|>``.
        s2s_stop_at_text_budget: S2S stops at the text budget instead of forcing
            ``<|im_end|>`` and going on to speech; speech ends at the reference's rule.
        reference_parsing: the reference's parsing of generated ids (S2S text drops its
            last id and speech its first token; TTS drops the last token).
        reference_decoding_defaults: no speech n-gram blocking in S2S, no age forcing in
            S2T chat with tag think.
        reference_instructions: understanding instructions of the reference's inference,
            not the trained prompt config's.
        token2wav_reference_streaming: token2wav streams with the reference's 34-frame
            flow cache and first hop.
    """

    encoder_mask_subsampling: bool = False
    understanding_prompt_typo: bool = False
    s2t_think_without_user_start: bool = False
    multiturn_reference_layout: bool = False
    text_history_doubled_im_end: bool = False
    s2s_stop_at_text_budget: bool = False
    reference_parsing: bool = False
    reference_decoding_defaults: bool = False
    reference_instructions: bool = False
    token2wav_reference_streaming: bool = False

    @classmethod
    def preset(cls, reference_compat: bool = True) -> "ReferenceQuirks":
        """Every switch set to ``reference_compat`` (the ``reference_compat`` preset)."""
        return cls(**{f.name: bool(reference_compat) for f in fields(cls)})

    @classmethod
    def coerce(
        cls, value: Union[bool, None, "ReferenceQuirks"], reference_compat: bool = False
    ) -> "ReferenceQuirks":
        """``value`` as quirks: a ReferenceQuirks as is, a bool as the preset, None as the
        preset of ``reference_compat``."""
        if isinstance(value, ReferenceQuirks):
            return value
        return cls.preset(reference_compat if value is None else bool(value))

    @property
    def all_on(self) -> bool:
        """True when every switch is on (the ``reference_compat`` preset)."""
        return all(getattr(self, f.name) for f in fields(self))


def switch(named: Optional[bool], reference_compat: bool) -> bool:
    """A part's switch: its own name when given, else its ``reference_compat`` alias."""
    return bool(reference_compat) if named is None else bool(named)
