"""Build ESPnet iterator factories over several data dirs (``--train_data_dir DIR[:WEIGHT]``)."""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

import torch
from espnet2.iterators.sequence_iter_factory import SequenceIterFactory

from espnet2_echat.data.preprocessor import EChatPreprocessor
from espnet2_echat.train.datadir_dataset import DataDirDataset
from espnet2_echat.train.multi_task_sampler import (
    REFERENCE_TYPE_SCALE,
    MultiTaskBatchSampler,
    pool_by_weight,
)


def parse_data_dir_spec(spec: str) -> Tuple[str, Path, float]:
    """``DIR`` or ``DIR:WEIGHT`` -> (set name = the dir's basename, dir, weight)."""
    path, weight = spec, 1.0
    if ":" in spec:
        head, tail = spec.rsplit(":", 1)
        try:
            path, weight = head, float(tail)
        except ValueError:
            pass  # a ':' inside the path
    d = Path(path)
    if not d.is_dir():
        raise FileNotFoundError(f"data dir {d} (from {spec!r}) does not exist")
    return d.name, d, weight


def build_multi_task_iter_factory(
    specs: List[str],
    preprocess: EChatPreprocessor,
    collate_fn,
    args: argparse.Namespace,
    train: bool,
    num_iters_per_epoch=None,
    distributed: bool = False,
) -> SequenceIterFactory:
    """Validate the dirs, filter samples (docs/data_pipeline.md#filters), bucket by tokens, mix
    by weight."""
    if not isinstance(preprocess, EChatPreprocessor):
        raise ValueError("--train_data_dir / --valid_data_dir need --use_preprocessor true")
    sets: Dict[str, Path] = {}
    weights: Dict[str, float] = {}
    for spec in specs:
        name, d, w = parse_data_dir_spec(spec)
        if name in sets:
            raise ValueError(f"two data dirs share the name {name!r}: {sets[name]} and {d}")
        sets[name], weights[name] = d, w
    encoder_cache = None
    if getattr(args, "encoder_cache", False):
        from espnet2_echat.train.encoder_cache import encoder_fingerprint

        if not args.homogeneous_batches:  # a batch must be all audio or all cached outputs
            raise ValueError("--encoder_cache true needs --homogeneous_batches true")
        encoder_cache = encoder_fingerprint(args)
    dataset = DataDirDataset(
        sets, preprocess, speech_token_vocab=preprocess.builder.ids.num_tokens,
        encoder_cache=encoder_cache,
    )
    scale = dict(REFERENCE_TYPE_SCALE, **(args.batch_tokens_scale or {}))
    groups: Dict[str, List[Tuple[str, int, float]]] = {}
    group_weight: Dict[str, float] = {}
    dropped: Counter = Counter()
    for name in sets:
        for utt in dataset.utterances(name):
            uid = f"{name}/{utt}"
            data = dataset.raw(uid, load_audio=False)
            num_samples = dataset.num_samples(uid)
            reason, layout = preprocess.inspect(utt, data, num_samples)
            if reason is not None:
                dropped[(name, reason.split(":")[0])] += 1
                logging.debug(f"drop {uid}: {reason}")
                continue
            length = preprocess.estimate_length(layout, num_samples)
            group = f"{name}/{layout.output_type}" if args.homogeneous_batches else name
            groups.setdefault(group, []).append(
                (uid, length, scale.get(layout.output_type, 1.0))
            )
            group_weight[group] = weights[name]
    for (name, reason), n in sorted(dropped.items()):
        logging.warning(f"{sets[name]}: dropped {n} utterance(s): {reason}")
    if not groups:
        raise RuntimeError(f"no usable utterance in {', '.join(map(str, sets.values()))}")
    if not train:
        group_weight = {g: 1.0 for g in groups}
    if not args.homogeneous_batches:  # one pool: batches mix data dirs and output types
        if train and args.multi_task_mixing != "repeat":
            raise ValueError("homogeneous_batches false supports multi_task_mixing repeat only")
        groups = {"mixed": pool_by_weight(groups, group_weight, args.seed)}
        group_weight = {"mixed": 1.0}
    rank, world = 0, 1
    if distributed:
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    sampler = MultiTaskBatchSampler(
        groups,
        group_weight,
        batch_tokens=args.batch_tokens,
        max_batch_size=args.max_batch_size,
        mixing=args.multi_task_mixing if train else "repeat",
        rank=rank,
        world_size=world,
    )
    logging.info(f"{'train' if train else 'valid'} sampler: {sampler}")
    return SequenceIterFactory(
        dataset=dataset,
        batches=sampler,
        seed=args.seed,
        num_iters_per_epoch=num_iters_per_epoch,
        shuffle=train,
        num_workers=args.num_workers,
        collate_fn=collate_fn,
        pin_memory=args.ngpu > 0,
    )
