"""A converted OSUM-EChat checkpoint computes with the positional tables it stored (the
reference keeps them as persistent buffers), float16-rounded ones included; tables that are
not the sinusoid are refused."""

import pytest
import torch

from espnet2_echat.convert.osum_echat import ConversionError
from espnet2_echat.models.sinusoids import interleaved_sinusoids, whisper_sinusoids
from espnet2_echat.tasks.echat import EChatTask
from tests.helpers import load_wav
from tests.models.test_bad_input import _convert

ENC, ADAPTER = "encoder.embed.pos_enc.pe", "speech_transformer.embed.pos_enc.pe"


@pytest.fixture(scope="module")
def reference_state(osum_tiny_dir):
    return torch.load(osum_tiny_dir / "model.pt", map_location="cpu", weights_only=True)


def _encode(model, wav):
    """Adapter output of one utterance (encoder and adapter tables both on the path)."""
    with torch.no_grad():
        feats, flens = model.frontend(wav[None], torch.tensor([wav.numel()]))
        enc, elens = model.encoder(feats, flens)
        return model.adapter(enc, elens)[0]


@pytest.mark.reference
def test_float16_rounded_tables_are_computed_with(osum_tiny_dir, expected, tmp_path, reference_state):
    state = dict(reference_state)
    rounded = {key: state[key].half() for key in (ENC, ADAPTER)}  # stored as float16
    state.update(rounded)
    out = _convert(osum_tiny_dir, tmp_path, state).parent
    model, _ = EChatTask.build_model_from_file(out / "config.yaml", out / "model.pth")
    model.eval()
    # the reloaded model holds the stored tables bit for bit, not the regenerated formula
    assert torch.equal(model.encoder.positions, rounded[ENC][0].float())
    assert torch.equal(model.adapter.transformer.pos_enc.pe, rounded[ADAPTER].float())
    assert not torch.equal(model.encoder.positions, whisper_sinusoids(30000, 64))
    assert not torch.equal(model.adapter.transformer.pos_enc.pe[0], interleaved_sinusoids(5000, 64))
    # and computes with them: swapping in the formula's tables changes the output
    wav = load_wav(osum_tiny_dir, expected["utterances"][0])
    stored = _encode(model, wav)
    model.encoder.positions.copy_(whisper_sinusoids(30000, 64))
    model.adapter.transformer.pos_enc.pe.copy_(interleaved_sinusoids(5000, 64)[None])
    assert (stored - _encode(model, wav)).abs().max() > 1e-5


@pytest.mark.reference
@pytest.mark.parametrize("key", [ENC, ADAPTER])
def test_a_table_that_is_not_the_sinusoid_is_refused(osum_tiny_dir, tmp_path, reference_state, key):
    state = dict(reference_state)
    state[key] = torch.roll(state[key], 1, dims=1)  # shifted by one position
    with pytest.raises(ConversionError, match=key.replace(".", r"\.") + ": not the"):
        _convert(osum_tiny_dir, tmp_path, state)
