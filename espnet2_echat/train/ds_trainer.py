"""ESPnet's DeepSpeed trainer on any device and at any world size, one process included.

ESPnet 202511 enables ``DeepSpeedTrainer`` with ``--use_deepspeed true --deepspeed_config
<json>`` only when training is distributed (world size > 1), and the trainer itself speaks
CUDA only (``torch.tensor(0).cuda()``, ``to_device(batch, "cuda")``). This module:

* ``prepare_deepspeed(args)`` (called by ``EChatTask.main_worker``): a world-size-1 run
  (one GPU or the CPU) becomes a one-process "distributed" run, so ESPnet swaps in the
  DeepSpeed trainer; on CPU the collective backend is gloo (DeepSpeed's CPU accelerator
  falls back to gloo when oneCCL is not installed; no intel_extension_for_pytorch needed);
* ``EChatDeepSpeedTrainer``: ESPnet's ``DeepSpeedTrainer`` with the batch and the stop flag
  on DeepSpeed's accelerator device instead of ``cuda``; the training loss normalised like
  ESPnet's ``Trainer`` (ESPnet's DeepSpeed trainer divides the per-utterance mean loss by
  the batch size once more); the data dtype taken from ``bf16/fp16.enabled`` (ESPnet casts
  the batch to bf16 as soon as a ``bf16`` key exists, even ``{"enabled": false}``); the
  optimiser and scheduler built by ESPnet (``--optim``, ``--scheduler``) used when the json
  has no ``optimizer`` / ``scheduler``; and, after each epoch's DeepSpeed checkpoint, the
  full fp32 weights written as ``<epoch>epoch.pth`` (for ZeRO-3 gathered from the shards by
  DeepSpeed's ``zero_to_fp32``), so ``valid.loss.best.pth`` etc. are plain state dicts that
  the strict loader reads, as after a non-DeepSpeed run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

import torch
import torch.distributed as dist
from espnet2.main_funcs.average_nbest_models import average_nbest_models
from espnet2.torch_utils.device_funcs import to_device
from espnet2.torch_utils.recursive_op import recursive_average
from espnet2.torch_utils.set_all_random_seed import set_all_random_seed
from espnet2.train.deepspeed_trainer import DeepSpeedTrainer, DeepSpeedTrainerOptions
from espnet2.train.reporter import Reporter, SubReporter
from torch.distributed import ReduceOp

from espnet2_echat.train.devices import default_dist_backend, device_kind


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _skip_shm_comm_op():
    """DeepSpeed's CPU accelerator JIT-compiles a shared-memory all-reduce op
    (``deepspeed_shm_comm``, minutes of g++ on a fresh machine) whenever its comm backend
    starts. It only speeds up all-reduce between processes of one node (a single process
    needs none; several fall back to the gloo process group), so report it unavailable,
    which is DeepSpeed's own path without a compiler."""
    import deepspeed.comm.torch as ds_torch

    ds_torch.build_shm_op = lambda: None


def prepare_deepspeed(args: argparse.Namespace) -> None:
    """Make ``--use_deepspeed true`` run at world size 1 (one GPU, or the CPU) and on CPU.

    Call after ESPnet's ``resolve_distributed_mode`` (i.e. in ``main_worker``); changes
    nothing unless ``args.use_deepspeed``.
    """
    if not getattr(args, "use_deepspeed", False):
        return
    import espnet2.train.deepspeed_trainer as espnet_ds

    espnet_ds.DeepSpeedTrainer = EChatDeepSpeedTrainer  # abs_task imports it from there
    # ESPnet's init_deepspeed reads OMP_NUM_THREADS unconditionally
    os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
    kind = device_kind()
    if kind == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        if args.dist_backend == "nccl":  # ESPnet's default; no NCCL without a GPU
            args.dist_backend = default_dist_backend()
        # also for ranks started by espnet2.bin.launch: all-reduce then goes through the
        # gloo process group instead of a JIT-compiled op
        _skip_shm_comm_op()
        if args.distributed and args.local_rank is None:
            # launch gives CPU ranks "--local_rank none"; DeepSpeed needs an int LOCAL_RANK
            args.local_rank = 0
    if args.distributed:
        return
    # a single process: ESPnet would fall back to its plain trainer; run DeepSpeed with
    # a process group of one instead
    args.distributed = True
    args.dist_world_size, args.dist_rank = 1, 0
    args.local_rank = 0  # DeepSpeed reads LOCAL_RANK (set by ESPnet from this) on CPU too
    if args.dist_init_method == "env://" and "MASTER_ADDR" not in os.environ:
        args.dist_master_addr = args.dist_master_addr or "127.0.0.1"
        if args.dist_master_port is None and "MASTER_PORT" not in os.environ:
            args.dist_master_port = _free_port()


class EChatDeepSpeedTrainer(DeepSpeedTrainer):
    """ESPnet's DeepSpeed trainer, device-generic (see the module docstring)."""

    @classmethod
    def run(
        cls,
        model,
        train_iter_factory,
        valid_iter_factory,
        trainer_options: DeepSpeedTrainerOptions,
        **kwargs,
    ) -> None:
        import deepspeed

        keep_nbest_models = trainer_options.keep_nbest_models
        if isinstance(keep_nbest_models, int):
            keep_nbest_models = [keep_nbest_models]
        keep_nbest_models = list(keep_nbest_models) or [1]

        with open(trainer_options.deepspeed_config) as f:
            config = json.load(f)
        trainer_options.train_dtype = cls.setup_data_dtype(config)
        optimizers = kwargs.get("optimizers") or [None]
        schedulers = kwargs.get("schedulers") or [None]
        if len(optimizers) > 1:
            raise ValueError("DeepSpeed takes one optimizer; this model has several")
        optimizer = None if "optimizer" in config else optimizers[0]
        scheduler = None if "scheduler" in config or optimizer is None else schedulers[0]
        if optimizer is not None:
            logging.info(f"DeepSpeed wraps ESPnet's optimizer {type(optimizer).__name__}")
        model, _, _, _ = deepspeed.initialize(
            model=model,
            model_parameters=[p for p in model.parameters() if p.requires_grad],
            optimizer=optimizer,
            lr_scheduler=scheduler,
            config=config,
        )

        output_dir = Path(trainer_options.output_dir)
        reporter = Reporter()
        if trainer_options.resume:
            cls.resume(model=model, reporter=reporter, output_dir=output_dir)

        start_epoch = reporter.get_epoch() + 1
        if start_epoch == trainer_options.max_epoch + 1:
            logging.warning(f"The training has already reached at max_epoch: {start_epoch}")

        for iepoch in range(start_epoch, trainer_options.max_epoch + 1):
            set_all_random_seed(trainer_options.seed + iepoch)
            reporter.set_epoch(iepoch)
            for phase, factory, one_epoch in (
                ("train", train_iter_factory, cls.train_one_epoch),
                ("valid", valid_iter_factory, cls.valid_one_epoch),
            ):
                with reporter.observe(phase) as sub_reporter:
                    one_epoch(
                        model=model,
                        iterator=factory.build_iter(iepoch),
                        reporter=sub_reporter,
                        options=trainer_options,
                    )
            checkpoint_dir = output_dir / f"checkpoint_{iepoch}"
            model.save_checkpoint(
                checkpoint_dir, tag=f"{iepoch}", client_state={"reporter": reporter.state_dict()}
            )
            state = cls.full_state_dict(model, checkpoint_dir, f"{iepoch}")
            if dist.get_rank() == 0:
                torch.save(state, output_dir / f"{iepoch}epoch.pth")
                cls.link_and_prune(reporter, output_dir, iepoch, trainer_options, keep_nbest_models)
                logging.info(reporter.log_message())
                reporter.matplotlib_plot(output_dir / "images")

        if dist.get_rank() == 0:
            average_nbest_models(
                reporter=reporter,
                output_dir=output_dir,
                best_model_criterion=trainer_options.best_model_criterion,
                nbest=keep_nbest_models,
            )

    @staticmethod
    def link_and_prune(reporter, output_dir: Path, iepoch: int, options, keep_nbest_models):
        """As ESPnet's Trainer: ``latest.pth`` and ``<phase>.<key>.best.pth`` links to
        ``<epoch>epoch.pth``, and epoch files outside the n-best removed (the DeepSpeed
        ``checkpoint_<epoch>`` folders stay, as with ESPnet's DeepSpeed trainer)."""

        def link(name: str):
            p = output_dir / name
            if p.is_symlink() or p.exists():
                p.unlink()
            p.symlink_to(f"{iepoch}epoch.pth")

        link("latest.pth")
        for phase, key, mode in options.best_model_criterion:
            if reporter.has(phase, key) and reporter.get_best_epoch(phase, key, mode) == iepoch:
                link(f"{phase}.{key}.best.pth")
        nbests = set().union(
            *[
                set(reporter.sort_epochs(ph, k, m)[: max(keep_nbest_models)])
                for ph, k, m in options.best_model_criterion
                if reporter.has(ph, k)
            ]
        )
        for e in range(1, iepoch):
            p = output_dir / f"{e}epoch.pth"
            if p.exists() and e not in nbests:
                p.unlink()

    @staticmethod
    def full_state_dict(engine, checkpoint_dir: Path, tag: str) -> Dict[str, torch.Tensor]:
        """The model's complete fp32 state dict (every parameter, buffer and frozen weight)."""
        if engine.zero_optimization_stage() == 0:
            return {k: v.detach().float().cpu() if v.is_floating_point() else v.cpu()
                    for k, v in engine.module.state_dict().items()}
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        dist.barrier()
        return get_fp32_state_dict_from_zero_checkpoint(str(checkpoint_dir), tag=tag)

    @staticmethod
    def synced_batches(iterator, device: torch.device, dtype: torch.dtype):
        """``(iiter, batch)`` on the device while every rank still has a batch (ESPnet's
        stop-flag protocol: a rank that runs out tells the others at their next batch)."""
        stop = torch.tensor(0, device=device)
        for iiter, (utt_id, batch) in enumerate(iterator, 1):
            assert isinstance(batch, dict), type(batch)
            dist.all_reduce(stop, ReduceOp.SUM)
            if stop > 0:
                return
            batch["utt_id"] = utt_id
            yield iiter, to_device(batch, device, dtype=dtype)
        stop.fill_(1)
        dist.all_reduce(stop, ReduceOp.SUM)

    @classmethod
    def train_one_epoch(
        cls,
        model,
        iterator: Iterable[Tuple[List[str], Dict[str, torch.Tensor]]],
        reporter: SubReporter,
        options: DeepSpeedTrainerOptions,
    ) -> None:
        model.train()
        log_interval = options.log_interval
        if log_interval is None:
            try:
                log_interval = max(len(iterator) // 20, 10)
            except TypeError:
                log_interval = 100
        timed = reporter.measure_iter_time(iterator, "iter_time")
        for iiter, batch in cls.synced_batches(timed, model.device, options.train_dtype):
            with reporter.measure_time("step_time"):
                loss, stats, weight = model(**batch)
                stats = {k: v for k, v in stats.items() if v is not None}
                # as ESPnet's Trainer: the mean over every utterance of every rank, times
                # the world size because DeepSpeed averages the gradients over ranks
                loss = (loss * weight.type(loss.dtype)).sum()
                stats, weight = recursive_average(stats, weight, True)
                reporter.register(stats, weight)
                loss = loss / weight * dist.get_world_size()
                model.backward(loss)
                model.step()
                grad_norm = model.get_global_grad_norm()
                reporter.register(
                    dict(
                        grad_norm=None if grad_norm is None else float(grad_norm),
                        loss_scale=float(model.loss_scale()),
                        learning_rate=model.get_lr()[0],
                    )
                )
                reporter.next()
                if iiter % log_interval == 0:
                    logging.info(reporter.log_message(-log_interval))

    @classmethod
    @torch.no_grad()
    def valid_one_epoch(
        cls,
        model,
        iterator: Iterable[Tuple[List[str], Dict[str, torch.Tensor]]],
        reporter: SubReporter,
        options: DeepSpeedTrainerOptions,
    ) -> None:
        model.eval()
        for _, batch in cls.synced_batches(iterator, model.device, options.train_dtype):
            _, stats, weight = model(**batch)
            stats = {k: v for k, v in stats.items() if v is not None}
            stats, weight = recursive_average(stats, weight, True)
            reporter.register(stats, weight)
            reporter.next()

    @classmethod
    def setup_data_dtype(cls, deepspeed_config: Dict) -> torch.dtype:
        """bf16 / fp16 when that section is enabled (``"enabled"`` defaults to false, as in
        DeepSpeed), else float32."""
        if deepspeed_config.get("bf16", {}).get("enabled", False):
            return torch.bfloat16
        if deepspeed_config.get("fp16", {}).get("enabled", False):
            return torch.float16
        return torch.float32
