"""Token2WavTask: ESPnet task for the CosyVoice-style token2wav (flow + vocoder)."""

import argparse
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
import yaml
from espnet2.tasks.abs_task import AbsTask, optim_classes
from espnet2.torch_utils.initialize import initialize
from espnet2.train.gan_trainer import GANTrainer
from espnet2.utils.get_default_kwargs import get_default_kwargs
from espnet2.utils.nested_dict_action import NestedDictAction
from espnet2.utils.types import str_or_none

from espnet2_echat.models.token2wav.espnet_model import ESPnetToken2WavModel
from espnet2_echat.tasks.strict_loading import build_model_from_file_strict
from espnet2_echat.train.devices import AcceleratorTaskMixin, default_dist_backend


class Token2WavTask(AcceleratorTaskMixin, AbsTask):
    """Trains and loads ``ESPnetToken2WavModel``.

    Data: ``speech`` (wav.scp, ``sound``), ``speech_token`` (``text_int``: ``uttid id id``)
    and optionally ``spk_embedding`` (192-d x-vectors, ``kaldi_ark`` or ``npy``; without it
    the model uses its documented stand-in embedding).
    """

    num_optimizers: int = 1
    class_choices_list = []

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group(description="Task related")
        group.add_argument(
            "--init",
            type=lambda x: str_or_none(x.lower()),
            default=None,
            help="Initialisation method of the model parameters",
        )
        group.add_argument(
            "--model_conf",
            action=NestedDictAction,
            default=get_default_kwargs(ESPnetToken2WavModel),
            help="The keyword arguments for ESPnetToken2WavModel.",
        )
        parser.set_defaults(dist_backend=default_dist_backend())  # hccl / nccl / gloo

    @classmethod
    def build_collate_fn(cls, args: argparse.Namespace, train: bool) -> Callable:
        # Speech tokens are padded with -1 (the flow clamps them to 0 under its mask).
        # imported here: espnet2.train.collate_fn pulls g2p_en and nltk (slow --help)
        from espnet2.train.collate_fn import CommonCollateFn

        return CommonCollateFn(float_pad_value=0.0, int_pad_value=-1)

    @classmethod
    def build_preprocess_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Optional[Callable]:
        return None

    @classmethod
    def required_data_names(
        cls, train: bool = True, inference: bool = False
    ) -> Tuple[str, ...]:
        if inference:
            return ("speech_token",)
        return ("speech", "speech_token")

    @classmethod
    def optional_data_names(
        cls, train: bool = True, inference: bool = False
    ) -> Tuple[str, ...]:
        return ("spk_embedding", "pitch")

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> ESPnetToken2WavModel:
        model = ESPnetToken2WavModel(**(getattr(args, "model_conf", None) or {}))
        if getattr(args, "init", None) is not None:
            initialize(model, args.init)
        return model

    @classmethod
    def build_model_from_file(
        cls,
        config_file: Optional[Union[Path, str]] = None,
        model_file: Optional[Union[Path, str]] = None,
        device: str = "cpu",
    ) -> Tuple[ESPnetToken2WavModel, argparse.Namespace]:
        """Build the model from ``config.yaml`` and load ``model.pth`` strictly.

        Unlike ``AbsTask.build_model_from_file`` (``strict=False``), a key missing from or
        unexpected in ``model_file`` is an error that names the keys.
        """
        return build_model_from_file_strict(cls, config_file, model_file, device)

    @classmethod
    def default_config(cls, model_conf: Dict) -> Dict:
        """A complete task config (parser defaults) with the given ``model_conf``, usable as
        ``--config`` of ``token2wav_train`` (ESPnet's non-config options left out)."""
        config = vars(cls.get_parser().parse_args([]))
        for key in AbsTask.exclude_opts():
            config.pop(key, None)
        config["model_conf"] = model_conf
        return config


class Token2WavGANTask(Token2WavTask):
    """Token2WavTask for ``train_part`` ``hift`` / ``both``: two optimizers, ``GANTrainer``.

    ``optim`` updates the generator side (HiFT, plus the flow for ``both``), ``optim2``
    the discriminator.
    """

    num_optimizers: int = 2
    trainer = GANTrainer

    @classmethod
    def required_data_names(
        cls, train: bool = True, inference: bool = False
    ) -> Tuple[str, ...]:
        return ("speech",)

    @classmethod
    def optional_data_names(
        cls, train: bool = True, inference: bool = False
    ) -> Tuple[str, ...]:
        return ("speech_token", "spk_embedding", "pitch")

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> ESPnetToken2WavModel:
        model = super().build_model(args)
        if model.train_part == "flow":
            raise ValueError(
                "Token2WavGANTask trains HiFT: set model_conf.train_part to hift or both"
            )
        return model

    @classmethod
    def build_optimizers(
        cls, args: argparse.Namespace, model: ESPnetToken2WavModel
    ) -> List[torch.optim.Optimizer]:
        generator = list(model.hift.parameters())
        if model.train_part == "both":
            generator += list(model.flow.parameters())
        else:
            model.flow.requires_grad_(False)
        optimizers = []
        for name, conf, params in (
            (args.optim, args.optim_conf, generator),
            (args.optim2, args.optim2_conf, model.gan_loss.discriminator.parameters()),
        ):
            optim_class = optim_classes.get(name)
            if optim_class is None:
                raise ValueError(
                    f"optimizer must be one of {list(optim_classes)}: {name}"
                )
            optimizers.append(optim_class(params, **conf))
        return optimizers


def token2wav_task_for(cmd: Optional[Sequence[str]]) -> Type[Token2WavTask]:
    """The task class a training command needs, from its ``train_part`` setting.

    ``train_part`` is read from ``--model_conf train_part=...`` or from the ``--config``
    file's ``model_conf``; ``flow`` (the default) uses ``Token2WavTask``.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    pre.add_argument("--model_conf", action="append", default=[])
    known, _ = pre.parse_known_args(list(cmd) if cmd is not None else None)
    part = "flow"
    if known.config:
        with open(known.config, encoding="utf-8") as f:
            part = ((yaml.safe_load(f) or {}).get("model_conf") or {}).get(
                "train_part", part
            )
    for item in known.model_conf:
        for piece in item.split(","):
            key, _, value = piece.partition("=")
            if key.strip() == "train_part":
                part = value.strip()
    return Token2WavTask if part == "flow" else Token2WavGANTask


__all__ = ["Token2WavTask", "Token2WavGANTask", "token2wav_task_for"]
