"""Strict model loading for the plugin's tasks.

ESPnet's ``AbsTask.build_model_from_file`` loads with ``strict=False``, so a checkpoint that
misses tensors silently yields a partly random model. Both tasks load through here instead:
a missing, unexpected or mis-shaped tensor is an error that names it.
"""

import argparse
import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import torch
import yaml

from espnet2_echat.safety.checkpoints import weights_only_load


class StrictLoadError(RuntimeError):
    """A model file does not match the model built from its config."""


def key_problems(
    missing: List[str], unexpected: List[str], mis_shaped: List[str], noun: str = "keys"
) -> List[str]:
    """Human-readable lines naming (at most 20 of) each kind of mismatch; empty if none."""
    problems = []
    if missing:
        problems.append(f"missing {noun} ({len(missing)}): {', '.join(sorted(missing)[:20])}")
    if unexpected:
        problems.append(
            f"unexpected {noun} ({len(unexpected)}): {', '.join(sorted(unexpected)[:20])}"
        )
    if mis_shaped:
        problems.append(f"shape mismatches ({len(mis_shaped)}): {'; '.join(mis_shaped[:20])}")
    return problems


def load_state_dict_strict(model: torch.nn.Module, state: Dict[str, torch.Tensor], source: str):
    """Load ``state`` requiring the exact key set and shapes; errors name the keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mis_shaped = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if state[k].shape != expected[k].shape
    ]
    problems = key_problems(missing, unexpected, mis_shaped)
    if problems:
        raise StrictLoadError(f"{source} does not match the model: " + " | ".join(problems))
    model.load_state_dict(state, strict=True)


def build_model_from_file_strict(
    task,
    config_file: Optional[Union[Path, str]],
    model_file: Optional[Union[Path, str]],
    device: str = "cpu",
) -> Tuple[torch.nn.Module, argparse.Namespace]:
    """``task.build_model`` from ``config.yaml`` (default: next to ``model_file``), then a
    strict load of ``model_file``. ``args.config_dir`` lets relative paths in the config
    resolve against the config's folder and its ancestors."""
    if config_file is None:
        if model_file is None:
            raise ValueError("give config_file or model_file")
        config_file = Path(model_file).parent / "config.yaml"
    config_file = Path(config_file)
    with config_file.open("r", encoding="utf-8") as f:
        args = argparse.Namespace(**yaml.safe_load(f))
    args.config_dir = str(config_file.parent)
    args.config_file = str(config_file)
    model = task.build_model(args).to(device)
    if model_file is not None:
        state = weights_only_load(model_file, map_location=device)
        load_state_dict_strict(model, state, str(model_file))
        logging.info(f"loaded {model_file} strictly ({len(state)} tensors)")
    return model, args
