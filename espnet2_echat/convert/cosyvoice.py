"""Convert a CosyVoice-300M(-25Hz) directory into an ESPnet token2wav model.

Reads ``cosyvoice.yaml`` (hyperpyyaml) as plain YAML, without executing any of its tags,
to get the model sizes; maps ``flow.pt`` and ``hift.pt`` key by key (strict: any key left
over or missing is an error); skips ``llm.pt`` (the CosyVoice text LLM, unused by
OSUM-EChat). Writes ``config.yaml`` and ``model.pth`` for ``Token2WavTask``.
"""

import logging
import re
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
import yaml

from espnet2_echat.models.token2wav.speaker_prompt import SpeakerPrompt

FLOW_CLASS = "cosyvoice.flow.flow.MaskedDiffWithXvec"
HIFT_CLASS = "cosyvoice.hifigan.generator.HiFTGenerator"


# ---------------------------------------------------------------- hyperpyyaml as data
class _Tagged(dict):
    """A mapping that carried a hyperpyyaml tag (``!new:cls``, ``!name:fn``...)."""

    def __init__(self, tag: str, value: Any):
        super().__init__(value if isinstance(value, dict) else {"__args__": value})
        self.tag = tag


class _Ref(str):
    """A ``!ref <key>`` scalar, resolved after loading."""


def _hyperpyyaml_loader() -> type:
    class Loader(yaml.SafeLoader):
        pass

    def construct_tagged(loader, tag_suffix, node):
        tag = node.tag
        if tag == "!ref":
            return _Ref(loader.construct_scalar(node))
        if isinstance(node, yaml.MappingNode):
            value = loader.construct_mapping(node, deep=True)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_scalar(node)
        return _Tagged(tag, value)

    Loader.add_multi_constructor("!", construct_tagged)
    return Loader


def load_cosyvoice_yaml(path: Path) -> Dict[str, Any]:
    """Parse a hyperpyyaml file as data: tags become ``_Tagged`` dicts, ``!ref`` resolved."""
    with Path(path).open("r", encoding="utf-8") as f:
        raw = yaml.load(f, Loader=_hyperpyyaml_loader())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")

    def resolve(value: Any) -> Any:
        if isinstance(value, _Ref):
            match = re.fullmatch(r"<([\w.]+)>", value.strip())
            if match is None or match.group(1) not in raw:
                raise ValueError(f"{path}: cannot resolve !ref {value}")
            return resolve(raw[match.group(1)])
        if isinstance(value, _Tagged):
            out = _Tagged(value.tag, {k: resolve(v) for k, v in value.items()})
            return out
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    return {k: resolve(v) for k, v in raw.items()}


def _expect_class(node: Any, cls: str, where: str, path: Path) -> Dict[str, Any]:
    if not isinstance(node, _Tagged) or node.tag != f"!new:{cls}":
        got = getattr(node, "tag", type(node).__name__)
        raise ValueError(f"{path}: {where} must be '!new:{cls}', got {got!r}")
    return node


def _get(node: Dict[str, Any], key: str, where: str, path: Path) -> Any:
    if key not in node:
        raise ValueError(f"{path}: {where} has no '{key}'")
    return node[key]


def model_conf_from_yaml(path: Path) -> Dict[str, Any]:
    """Read the sizes ``ESPnetToken2WavModel`` needs from a CosyVoice ``cosyvoice.yaml``."""
    cfg = load_cosyvoice_yaml(path)
    feat = _get(cfg, "feat_extractor", "top level", path)
    sample_rate = int(_get(cfg, "sample_rate", "top level", path))
    hop = int(feat.get("hop_size", 256))
    return {
        "flow_conf": _flow_conf(cfg, path, sample_rate, hop),
        "vocoder": "hift",
        "hift_conf": _hift_conf(cfg, path),
        "mel_conf": _mel_conf(feat, sample_rate, hop),
        "speech_fs": sample_rate,
    }


def _flow_conf(cfg: Dict[str, Any], path: Path, sample_rate: int, hop: int) -> Dict[str, Any]:
    """``flow_conf``: the flow's encoder, length regulator, estimator and CFM settings."""
    flow = _expect_class(_get(cfg, "flow", "top level", path), FLOW_CLASS, "flow", path)
    enc = _expect_class(
        _get(flow, "encoder", "flow", path),
        "cosyvoice.transformer.encoder.ConformerEncoder",
        "flow.encoder",
        path,
    )
    _check_flow_encoder(enc, path)
    lr = _expect_class(
        _get(flow, "length_regulator", "flow", path),
        "cosyvoice.flow.length_regulator.InterpolateRegulator",
        "flow.length_regulator",
        path,
    )
    dec = _expect_class(
        _get(flow, "decoder", "flow", path),
        "cosyvoice.flow.flow_matching.ConditionalCFM",
        "flow.decoder",
        path,
    )
    cfm = _get(dec, "cfm_params", "flow.decoder", path)
    cfm = cfm.get("content", cfm)
    est = _expect_class(
        _get(dec, "estimator", "flow.decoder", path),
        "cosyvoice.flow.decoder.ConditionalDecoder",
        "flow.decoder.estimator",
        path,
    )
    flow_conf = {
        "vocab_size": int(flow.get("vocab_size", 4096)),
        "input_size": int(_get(flow, "input_size", "flow", path)),
        "output_size": int(flow.get("output_size", 80)),
        "spk_embed_dim": int(_get(flow, "spk_embed_dim", "flow", path)),
        "input_frame_rate": int(_get(flow, "input_frame_rate", "flow", path)),
        "sample_rate": sample_rate,
        "hop_size": hop,
        "encoder_conf": {
            "output_size": int(enc["output_size"]),
            "attention_heads": int(enc["attention_heads"]),
            "linear_units": int(enc["linear_units"]),
            "num_blocks": int(enc["num_blocks"]),
            "dropout_rate": float(enc.get("dropout_rate", 0.1)),
            "positional_dropout_rate": float(enc.get("positional_dropout_rate", 0.1)),
            "attention_dropout_rate": float(enc.get("attention_dropout_rate", 0.0)),
        },
        "length_regulator_conf": {
            "sampling_ratios": list(lr.get("sampling_ratios", [1, 1, 1, 1]))
        },
        "estimator_conf": {
            "channels": list(est["channels"]),
            "dropout": float(est.get("dropout", 0.0)),
            "attention_head_dim": int(est["attention_head_dim"]),
            "n_blocks": int(est["n_blocks"]),
            "num_mid_blocks": int(est["num_mid_blocks"]),
            "num_heads": int(est["num_heads"]),
            "act_fn": str(est.get("act_fn", "gelu")),
        },
        "cfm_conf": {
            "sigma_min": float(cfm.get("sigma_min", 1e-6)),
            "t_scheduler": str(cfm.get("t_scheduler", "cosine")),
            "training_cfg_rate": float(cfm.get("training_cfg_rate", 0.2)),
            "inference_cfg_rate": float(cfm.get("inference_cfg_rate", 0.7)),
        },
    }
    if int(enc.get("input_size", flow_conf["input_size"])) != flow_conf["input_size"]:
        raise ValueError(f"{path}: flow.encoder.input_size must equal flow.input_size")
    if int(est["in_channels"]) != 4 * flow_conf["output_size"]:
        raise ValueError(
            f"{path}: flow.decoder.estimator.in_channels must be 4 * output_size"
        )
    return flow_conf


def _check_flow_encoder(enc: Dict[str, Any], path: Path) -> None:
    """The flow encoder must be the Conformer variant this package implements."""
    expected_enc = {
        "input_layer": "linear",
        "pos_enc_layer_type": "rel_pos_espnet",
        "selfattention_layer_type": "rel_selfattn",
        "normalize_before": True,
        "use_cnn_module": False,
        "macaron_style": False,
    }
    for key, want in expected_enc.items():
        if enc.get(key, want) != want:
            raise ValueError(
                f"{path}: flow.encoder.{key} is {enc.get(key)!r}; only {want!r} is supported"
            )


def _hift_conf(cfg: Dict[str, Any], path: Path) -> Dict[str, Any]:
    """``hift_conf``: the HiFT vocoder and its F0 predictor."""
    hift = _expect_class(_get(cfg, "hift", "top level", path), HIFT_CLASS, "hift", path)
    f0 = _expect_class(
        _get(hift, "f0_predictor", "hift", path),
        "cosyvoice.hifigan.f0_predictor.ConvRNNF0Predictor",
        "hift.f0_predictor",
        path,
    )
    hift_keys = (
        "in_channels",
        "base_channels",
        "nb_harmonics",
        "sampling_rate",
        "nsf_alpha",
        "nsf_sigma",
        "nsf_voiced_threshold",
        "upsample_rates",
        "upsample_kernel_sizes",
        "istft_params",
        "resblock_kernel_sizes",
        "resblock_dilation_sizes",
        "source_resblock_kernel_sizes",
        "source_resblock_dilation_sizes",
        "lrelu_slope",
        "audio_limit",
    )
    hift_conf = {k: hift[k] for k in hift_keys if k in hift}
    hift_conf["f0_predictor_conf"] = {
        "num_class": int(f0.get("num_class", 1)),
        "in_channels": int(f0.get("in_channels", 80)),
        "cond_channels": int(_get(f0, "cond_channels", "hift.f0_predictor", path)),
    }
    return hift_conf


def _mel_conf(feat: Dict[str, Any], sample_rate: int, hop: int) -> Dict[str, Any]:
    """``mel_conf``: the mel features of the prompt (CosyVoice's ``feat_extractor``)."""
    return {
        "sample_rate": int(feat.get("sampling_rate", sample_rate)),
        "n_fft": int(feat.get("n_fft", 1024)),
        "num_mels": int(feat.get("num_mels", 80)),
        "hop_size": hop,
        "win_size": int(feat.get("win_size", 1024)),
        "fmin": float(feat.get("fmin", 0)),
        "fmax": float(feat["fmax"]) if feat.get("fmax") is not None else None,
    }


def convert_flow_state(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """``flow.pt`` keys -> ``ESPnetToken2WavModel`` keys (``flow.`` prefix).

    The only renaming is the encoder input layer: WeNet's ``embed.out.{0,1}`` is ESPnet's
    ``embed.{0,1}`` (the positional encoding has no parameters in either).
    """
    out = {}
    for key, value in state.items():
        new = re.sub(r"^encoder\.embed\.out\.(\d+)\.", r"encoder.embed.\1.", key)
        out["flow." + new] = value
    return out


def convert_hift_state(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """``hift.pt`` keys -> model keys: strip ``generator.``, map legacy weight norm.

    Both the legacy ``<conv>.weight_g`` / ``<conv>.weight_v`` layout and torch's
    parametrization layout (``parametrizations.weight.original0/1``) are accepted.
    """
    out = {}
    for key, value in state.items():
        key = key[len("generator.") :] if key.startswith("generator.") else key
        key = re.sub(r"\.weight_g$", ".parametrizations.weight.original0", key)
        key = re.sub(r"\.weight_v$", ".parametrizations.weight.original1", key)
        out["hift." + key] = value
    return out


def _load_state(path: Path) -> Dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found (expected in a CosyVoice-300M directory)"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ValueError(f"{path}: expected a flat state dict of tensors")
    return state


def convert_cosyvoice(
    cosyvoice_dir: Union[str, Path],
    out_dir: Union[str, Path],
    prompt: Optional[SpeakerPrompt] = None,
) -> Tuple[Path, Path]:
    """Convert ``cosyvoice_dir`` to ``out_dir/config.yaml`` + ``out_dir/model.pth``.

    Args:
        cosyvoice_dir: Directory with ``cosyvoice.yaml``, ``flow.pt``, ``hift.pt``.
        out_dir: Output directory.
        prompt: Optional speaker prompt stored with the model.

    Returns:
        (config path, model path).
    """
    from espnet2_echat.tasks.token2wav import (
        Token2WavTask,  # convert/ sits above tasks/
    )

    src, out = Path(cosyvoice_dir), Path(out_dir)
    model_conf = model_conf_from_yaml(src / "cosyvoice.yaml")
    if prompt is not None:
        model_conf["prompt_num_frames"] = int(prompt.prompt_feat.shape[1])
        model_conf["prompt_num_tokens"] = int(prompt.prompt_token.shape[1])
    if (src / "llm.pt").exists():
        logging.info(
            "%s: skipped (CosyVoice text LLM, unused by OSUM-EChat token2wav)",
            src / "llm.pt",
        )
    state = convert_flow_state(_load_state(src / "flow.pt"))
    state.update(convert_hift_state(_load_state(src / "hift.pt")))
    config = Token2WavTask.default_config(model_conf)
    model = Token2WavTask.build_model(argparse_namespace(config))
    expected = model.state_dict()
    if prompt is not None:
        model.store_prompt(prompt)
    for name in ("prompt_token", "prompt_feat", "prompt_embedding"):
        state[name] = getattr(model, name)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{src}: checkpoint keys do not match the model built from cosyvoice.yaml; "
            f"missing {_head(missing)}, unexpected {_head(unexpected)}"
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ValueError(
                f"{src}: {key} has shape {tuple(value.shape)}, the config gives {tuple(expected[key].shape)}"
            )
    model.load_state_dict(state, strict=True)
    out.mkdir(parents=True, exist_ok=True)
    config_path, model_path = out / "config.yaml", out / "model.pth"
    with config_path.open("w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    torch.save(model.state_dict(), model_path)
    logging.info("wrote %s and %s", config_path, model_path)
    return config_path, model_path


def _head(keys, n: int = 10) -> str:
    return str(keys[:n]) + (f" ... ({len(keys)} in all)" if len(keys) > n else "")


def argparse_namespace(config: Dict[str, Any]):
    """Namespace view of a config dict (what ``build_model`` takes)."""
    import argparse

    return argparse.Namespace(**config)


def convert_cosyvoice_cli(
    cosyvoice_dir: str,
    out_dir: str,
    prompt_wav: Optional[str] = None,
    prompt_speech_token: Optional[str] = None,
    prompt_embedding: Optional[str] = None,
    onnx_dir: Optional[str] = None,
) -> Tuple[Path, Path]:
    """``convert_cosyvoice`` plus building the stored speaker prompt from files."""
    prompt = None
    if prompt_wav is not None:
        from espnet2_echat.models.token2wav.prompt_frontend import (
            speaker_prompt_from_files,
        )

        mel_conf = model_conf_from_yaml(Path(cosyvoice_dir) / "cosyvoice.yaml")
        prompt = speaker_prompt_from_files(
            prompt_wav,
            mel_conf["mel_conf"],
            prompt_speech_token,
            prompt_embedding,
            onnx_dir,
        )
    elif prompt_speech_token or prompt_embedding:
        raise ValueError("--prompt_speech_token / --prompt_embedding need --prompt_wav")
    return convert_cosyvoice(cosyvoice_dir, out_dir, prompt)
