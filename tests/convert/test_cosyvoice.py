"""CosyVoice converter: yaml read as data, key mapping, strict errors."""

from pathlib import Path

import pytest
import torch

from espnet2_echat.convert.cosyvoice import (
    convert_cosyvoice,
    convert_hift_state,
    load_cosyvoice_yaml,
    model_conf_from_yaml,
)
from espnet2_echat.tasks.token2wav import Token2WavTask

pytestmark = pytest.mark.reference


@pytest.fixture(scope="module")
def cosyvoice_dir(token2wav_tiny_dir: Path) -> Path:
    return token2wav_tiny_dir / "CosyVoice-300M-25Hz"


def _copy_dir(src: Path, dst: Path, **replace) -> Path:
    dst.mkdir()
    for name in ("cosyvoice.yaml", "flow.pt", "hift.pt"):
        if name in replace:
            obj = replace[name]
            if isinstance(obj, str):
                (dst / name).write_text(obj, encoding="utf-8")
            else:
                torch.save(obj, dst / name)
        else:
            (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_yaml_is_read_without_running_it(cosyvoice_dir):
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    cfg = load_cosyvoice_yaml(
        cosyvoice_dir / "cosyvoice.yaml"
    )  # has !apply:torch.manual_seed [1234]
    assert torch.equal(torch.rand(3), expected)
    assert cfg["flow"].tag == "!new:cosyvoice.flow.flow.MaskedDiffWithXvec"
    conf = model_conf_from_yaml(cosyvoice_dir / "cosyvoice.yaml")
    assert conf["flow_conf"]["input_frame_rate"] == 25
    assert conf["flow_conf"]["encoder_conf"]["num_blocks"] == 2
    assert (
        conf["hift_conf"]["sampling_rate"] == 22050
    )  # resolved from !ref <sample_rate>
    assert conf["hift_conf"]["f0_predictor_conf"]["cond_channels"] == 64


def test_hift_key_layouts_are_equivalent(cosyvoice_dir):
    legacy = torch.load(cosyvoice_dir / "hift.pt", weights_only=True)
    param = {}
    for k, v in legacy.items():
        k = k.replace(".weight_g", ".parametrizations.weight.original0")
        k = k.replace(".weight_v", ".parametrizations.weight.original1")
        param["generator." + k] = v
    a, b = convert_hift_state(legacy), convert_hift_state(param)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_convert_is_strict(cosyvoice_dir, tmp_path):
    flow = torch.load(cosyvoice_dir / "flow.pt", weights_only=True)
    flow.pop("encoder_proj.bias")
    flow["encoder.extra.weight"] = torch.zeros(1)
    bad = _copy_dir(cosyvoice_dir, tmp_path / "bad", **{"flow.pt": flow})
    with pytest.raises(
        ValueError,
        match=r"missing \['flow.encoder_proj.bias'\].*unexpected \['flow.encoder.extra.weight'\]",
    ):
        convert_cosyvoice(bad, tmp_path / "out")


def test_convert_rejects_other_flow_class(cosyvoice_dir, tmp_path):
    text = (cosyvoice_dir / "cosyvoice.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "cosyvoice.flow.flow.MaskedDiffWithXvec",
        "cosyvoice.flow.flow.CausalMaskedDiffWithXvec",
    )
    bad = _copy_dir(cosyvoice_dir, tmp_path / "v2", **{"cosyvoice.yaml": text})
    with pytest.raises(
        ValueError, match="flow must be '!new:cosyvoice.flow.flow.MaskedDiffWithXvec'"
    ):
        convert_cosyvoice(bad, tmp_path / "out")


def test_load_is_strict(cosyvoice_dir, tmp_path):
    config, weights = convert_cosyvoice(cosyvoice_dir, tmp_path / "ok")
    state = torch.load(weights, weights_only=True)
    state.pop("flow.encoder_proj.bias")
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(
        RuntimeError, match=r"missing keys \(1\): flow\.encoder_proj\.bias"
    ):
        Token2WavTask.build_model_from_file(config, tmp_path / "partial.pth")


def test_convert_cli_stores_prompt(token2wav_tiny_dir, cosyvoice_dir, tmp_path):
    """The converter CLI stores the prompt voice; inference then needs no prompt files."""
    from espnet2_echat.bin import convert_cosyvoice as cli
    from espnet2_echat.inference.token2wav import Token2WavInference

    case = sorted(p for p in (token2wav_tiny_dir / "inputs").iterdir() if p.is_dir())[0]
    inputs = torch.load(case / "inputs.pt", weights_only=True)
    tokens = tmp_path / "prompt_tokens"
    tokens.write_text(
        "prompt " + " ".join(map(str, inputs["prompt_token"][0].tolist())) + "\n"
    )
    cli.main(
        [
            "--cosyvoice_dir",
            str(cosyvoice_dir),
            "--out_dir",
            str(tmp_path / "out"),
            "--prompt_wav",
            str(case / "prompt.wav"),
            "--prompt_speech_token",
            str(tokens),
        ]
    )
    t2w = Token2WavInference.from_pretrained(tmp_path / "out", n_timesteps=2)
    assert torch.equal(t2w.prompt.prompt_token, inputs["prompt_token"].long())
    # the README's prompt-mel tolerance (atol 1e-4, rtol 1e-4), as in test_prompt_mel
    assert torch.allclose(t2w.prompt.prompt_feat, inputs["prompt_feat"], atol=1e-4, rtol=1e-4)
    assert t2w.prompt.embedding.shape == (1, 192)  # stand-in: no CAM++ here
    assert len(t2w([5, 6, 7, 8, 9] * 6)) == int(30 / 25 * 22050 / 256) * 256


def test_real_size_yaml_matches_full_config(cosyvoice_dir, tmp_path):
    """Un-shrinking the fixture yaml ("# tiny (real X)") gives the released sizes, which
    conf/token2wav/cosyvoice_300m_25hz.yaml must describe exactly."""
    import re

    import yaml

    lines = []
    for line in (
        (cosyvoice_dir / "cosyvoice.yaml").read_text(encoding="utf-8").splitlines()
    ):
        m = re.match(r"^(\s*[\w]+:\s*)(.+?)\s*# tiny \(real (.+)\)\s*$", line)
        lines.append(f"{m.group(1)}{m.group(3)}" if m else line)
    real = tmp_path / "cosyvoice.yaml"
    real.write_text("\n".join(lines) + "\n", encoding="utf-8")
    conf = model_conf_from_yaml(real)
    full = (
        Path(__file__).resolve().parents[2]
        / "conf"
        / "token2wav"
        / "cosyvoice_300m_25hz.yaml"
    )
    expected = yaml.safe_load(full.read_text(encoding="utf-8"))["model_conf"]
    for key in ("flow_conf", "hift_conf", "mel_conf", "vocoder"):
        assert conf[key] == expected[key], key
    assert conf["flow_conf"]["estimator_conf"]["num_mid_blocks"] == 12
    with torch.device("meta"):
        model = Token2WavTask.build_model(
            Token2WavTask.get_parser().parse_args(["--model_conf", str(conf)])
        )
    counts = {
        n: sum(p.numel() for p in getattr(model, n).parameters())
        for n in ("flow", "hift")
    }
    assert counts == {"flow": 104874752, "hift": 20460591}
