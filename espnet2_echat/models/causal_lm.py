"""The text LLM: any transformers causal LM, built from a config or loaded from a directory."""

import os
from pathlib import Path
from typing import Mapping, Optional, Sequence

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_path(path: str, base_dir: Optional[str] = None) -> str:
    """Resolve a relative local path against ``base_dir`` and its ancestors.

    Configs name paths relative to the recipe root (``conf/llm/...``) and live somewhere
    below it (``exp/<model>/config.yaml``), in a recipe or in an unpacked model zoo archive;
    the first ancestor of ``base_dir`` holding ``path`` wins. Otherwise the path is returned
    unchanged (relative to the working directory, or a hub name). A ``wheel:`` name
    (``espnet2_echat.wheel_assets``) becomes the directory assembled from its wheel.
    """
    if path.startswith("wheel:"):
        from espnet2_echat.wheel_assets import resolve_wheel_asset

        return str(resolve_wheel_asset(path))
    if base_dir and not os.path.isabs(path):
        for folder in (Path(base_dir).resolve(), *Path(base_dir).resolve().parents):
            if (folder / path).exists():
                return str(folder / path)
    return path


def build_causal_lm(
    name_or_path: str,
    pretrained: bool = False,
    dtype: str = "float32",
    config_overrides: Optional[dict] = None,
    attn_implementation: str = "sdpa",
) -> PreTrainedModel:
    """Build the LLM part (Qwen2.5 by default; any ``AutoModelForCausalLM`` works).

    Args:
        name_or_path: a local directory or a hub name holding ``config.json`` (and weights
            when ``pretrained``). The tiny default points at a config-only directory.
        pretrained: load weights with ``from_pretrained``; otherwise build randomly
            initialised from the config (weights then come from a checkpoint, as in the
            reference, which never loads Qwen weights from the hub).
        dtype: parameter dtype. Always explicit: a config's ``torch_dtype`` (bfloat16 for
            Qwen2.5) is not followed silently.
        config_overrides: config fields to change (e.g. a smaller ``num_hidden_layers``).
    """
    if dtype not in _DTYPES:
        raise ValueError(f"llm dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    config = AutoConfig.from_pretrained(name_or_path, **(config_overrides or {}))
    config._attn_implementation = attn_implementation
    if pretrained:
        return AutoModelForCausalLM.from_pretrained(
            name_or_path, config=config, dtype=_DTYPES[dtype]
        )
    return AutoModelForCausalLM.from_config(config, dtype=_DTYPES[dtype])


def grow_vocabulary(
    causal_lm: PreTrainedModel, rows: int, init_from: Mapping[int, Sequence[int]]
) -> None:
    """Give the LLM ``rows`` text ids (never fewer than it has) for tokens added to its
    tokenizer, as a user does with ``resize_token_embeddings``.

    Each new id's input row (and output row, when untied) is set to the mean of the rows of
    ``init_from[id]``, the pieces the token was spelled with before, so added tokens start
    distinct and near their old spelling (rows of ids not in ``init_from`` keep
    transformers' initialisation).
    """
    if rows > causal_lm.get_input_embeddings().weight.shape[0]:
        causal_lm.resize_token_embeddings(rows, mean_resizing=False)
    weights = [causal_lm.get_input_embeddings().weight]
    output = causal_lm.get_output_embeddings()
    if output is not None and output.weight is not weights[0]:
        weights.append(output.weight)
    with torch.no_grad():
        for weight in weights:
            for new_id, piece_ids in init_from.items():
                if new_id >= weight.shape[0] or max(piece_ids) >= weight.shape[0]:
                    raise ValueError(
                        f"added token id {new_id} (pieces {list(piece_ids)}) is outside the "
                        f"LLM's {weight.shape[0]} rows"
                    )
                weight[new_id] = weight[list(piece_ids)].mean(dim=0)


def text_vocab_size(causal_lm: PreTrainedModel) -> int:
    """Rows of the output embedding (151936 for Qwen2.5; larger than the tokenizer)."""
    return causal_lm.get_output_embeddings().weight.shape[0]




class HFCausalLM:
    """Class-choices entry for ``--llm hf_causal_lm``: calling it builds the transformers model.

    ESPnet's ``ClassChoices`` accepts classes only; ``HFCausalLM(**llm_conf)`` returns the
    ``PreTrainedModel`` itself (no wrapper), so parameter names stay those of transformers.
    """

    def __new__(cls, **kwargs) -> PreTrainedModel:
        return build_causal_lm(**kwargs)
