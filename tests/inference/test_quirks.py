"""Named switches of the reference's behaviours: each alone, the preset, the old aliases."""

import pytest

from espnet2_echat.data.quirks import ReferenceQuirks
from espnet2_echat.models.whisper_encoder import WhisperStyleEncoder

pytestmark = pytest.mark.reference


def test_preset_reaches_every_part(compat_s2r, fixed_s2r):
    assert compat_s2r.quirks == ReferenceQuirks.preset() and compat_s2r.reference_compat
    assert compat_s2r.layout.quirks.all_on
    assert compat_s2r.model.encoder.encoder_mask_subsampling
    assert fixed_s2r.quirks == ReferenceQuirks() and not fixed_s2r.reference_compat
    assert not fixed_s2r.model.encoder.encoder_mask_subsampling


def test_one_switch_alone(converted_dir, compat_s2r, fixed_s2r):
    """The typo'd understanding prompt, switched on by its name, is the preset's prompt;
    the other parts stay fixed."""
    from espnet2_echat.inference import Speech2Response

    one = Speech2Response(
        converted_dir / "config.yaml",
        converted_dir / "model.pth",
        quirks=ReferenceQuirks(understanding_prompt_typo=True),
    )
    typo = one.layout.system("text", inference=True)
    assert typo == compat_s2r.layout.system("text", inference=True)
    assert typo != fixed_s2r.layout.system("text", inference=True)
    # S2T-think keeps its user start: that is another switch
    think = one.layout.system("s2t_chat_think", inference=True)
    assert think == fixed_s2r.layout.system("s2t_chat_think", inference=True)
    assert think != compat_s2r.layout.system("s2t_chat_think", inference=True)
    assert not one.reference_compat and not one.quirks.reference_parsing


def test_old_names_are_aliases():
    lengths = __import__("torch").tensor([238, 225])
    alias = WhisperStyleEncoder(80, 8, 2, 16, 1, reference_compat=True)
    named = WhisperStyleEncoder(80, 8, 2, 16, 1, encoder_mask_subsampling=True)
    off = WhisperStyleEncoder(80, 8, 2, 16, 1, reference_compat=True, encoder_mask_subsampling=False)
    assert alias.subsample_lengths(lengths, 238).tolist() == [119, 112]
    assert named.subsample_lengths(lengths, 238).tolist() == [119, 112]
    assert off.subsample_lengths(lengths, 238).tolist() == [119, 113]
    assert ReferenceQuirks.coerce(True).all_on and ReferenceQuirks.coerce(None) == ReferenceQuirks()


def test_every_switch_is_documented():
    """docs/differences.md names each switch, and so does the table of data/quirks.py."""
    from dataclasses import fields

    from espnet2_echat.data import quirks
    from tests.helpers import REPO_ROOT

    page = (REPO_ROOT / "docs" / "differences.md").read_text(encoding="utf-8")
    names = [f.name for f in fields(ReferenceQuirks)]
    assert "s2s_stop_at_text_budget" in names  # the list is read, not empty
    assert [n for n in names if f"`{n}`" not in page] == []
    assert [n for n in names if f"``{n}``" not in quirks.__doc__] == []
