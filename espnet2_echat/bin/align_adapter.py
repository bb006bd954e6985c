#!/usr/bin/env python3
"""Align the adapter to the LLM's token embeddings with CTC before stage 1 (issue #13).

Reads the utterances of ``--data_dir`` whose task is ASR (``task`` names ``<TRANSCRIBE>``,
alone or with a label tag, or there is no ``task`` file: their ``text`` is the transcript)
with their dumped encoder outputs (``encoder_out.scp``, from
``dump_encoder_outputs``), builds the stage-1 model of ``--config``, trains its adapter with
``espnet2_echat.train.adapter_ctc`` and writes the adapter's weights under their model names
(``adapter.*``) to ``--output``, for ``echat_train --init_param OUTPUT:adapter:adapter``. The
same audio in several dirs counts once. An existing ``--output`` is kept (a re-run skips it).

    python -m espnet2_echat.bin.align_adapter \\
        --config conf/small_real/train_stage1_understanding.yaml \\
        --data_dir dump_small_real/train_asr --valid_data_dir dump_small_real/dev_asr \\
        --steps 500 --output exp_small_real/adapter_ctc/adapter.pth
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from espnet2_echat.data.datadir import read_kaldi_map
from espnet2_echat.data.task_registry import DEFAULT_TAG
from espnet2_echat.inference.threads import add_nthreads_argument, set_nthreads


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the stage-1 training config")
    parser.add_argument("--data_dir", nargs="+", required=True, help="training data dirs")
    parser.add_argument("--valid_data_dir", nargs="*", default=[], help="WER logged at the end")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup_steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", required=True, help="the adapter's weights (.pth)")
    add_nthreads_argument(parser)
    return parser


def transcribed(data_dir: Path) -> Optional[set]:
    """The utterances of ``data_dir`` whose task includes ASR, or None for all (no ``task``)."""
    if not (data_dir / "task").is_file():
        return None
    return {utt for utt, tags in read_kaldi_map(data_dir / "task").items() if DEFAULT_TAG in tags}


def asr_dirs(dirs: Sequence[str]) -> List[Path]:
    """The dirs with audio and at least one utterance whose task includes ASR."""
    chosen = []
    for d in map(Path, dirs):
        utts = transcribed(d) if (d / "wav.scp").is_file() else set()
        if utts is None or utts:
            chosen.append(d)
        else:
            logging.info("%s: no ASR utterance with audio, not used", d)
    return chosen


def read_utterances(dirs: Sequence[Path], fingerprint, tokenizer) -> Tuple[list, Dict[str, str]]:
    """The distinct utterances of ``dirs`` (by their encoder output file) and their texts."""
    import numpy as np
    import torch

    from espnet2_echat.train.adapter_ctc import AlignUtterance
    from espnet2_echat.train.encoder_cache import read_cache_scp

    items, texts, seen = [], {}, set()
    for d in dirs:
        paths = read_cache_scp(d, fingerprint)
        text = read_kaldi_map(d / "text")
        asr = transcribed(d)
        for utt, path in sorted(paths.items()):
            if path in seen or (asr is not None and utt not in asr):
                continue
            if not text.get(utt, "").strip():
                raise ValueError(f"{d}/text: utterance {utt} has no transcript")
            seen.add(path)
            ids = tokenizer(text[utt], add_special_tokens=False)["input_ids"]
            items.append(AlignUtterance(utt, torch.from_numpy(np.load(path).astype(np.float32)), ids))
            texts[utt] = text[utt]
    return items, texts


def greedy_wer(adapter, ctc, items, tokenizer, refs: Dict[str, str]) -> float:
    """Word error rate of the greedy CTC output of ``items`` against ``refs`` (uttid -> text)."""
    from espnet2_echat.scoring.normalize import has_cjk, normalize_for_scoring, word_units
    from espnet2_echat.scoring.wer import edit_distance
    from espnet2_echat.train.adapter_ctc import greedy_token_ids

    errors = words = 0
    for item, ids in zip(items, greedy_token_ids(adapter, ctc, items)):
        language = "zh" if has_cjk(refs[item.uttid]) else "en"  # zh: a unit per character
        ref = word_units(normalize_for_scoring(refs[item.uttid], language))
        hyp = word_units(normalize_for_scoring(tokenizer.decode(ids), language))
        counts = edit_distance(ref, hyp)
        errors, words = errors + counts.errors, words + counts.ref_len
    return errors / max(words, 1)


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s align_adapter: %(message)s")
    output = Path(args.output)
    if output.is_file():
        logging.info("%s exists, kept", output)
        return 0
    set_nthreads(args.nthreads)
    import torch

    from espnet2_echat.safety.atomic import atomic_write, atomic_write_text
    from espnet2_echat.tasks.echat import EChatTask
    from espnet2_echat.train.adapter_ctc import align_adapter
    from espnet2_echat.train.encoder_cache import encoder_fingerprint

    train_args = EChatTask.get_parser().parse_args(
        ["--config", args.config, "--output_dir", str(output.parent)]
    )
    train_dirs = asr_dirs(args.data_dir)
    if not train_dirs:
        raise ValueError(f"no ASR utterance (task {DEFAULT_TAG}) with audio in {args.data_dir}")
    torch.manual_seed(args.seed)
    model = EChatTask.build_model(train_args)
    tokenizer = EChatTask.text_tokenizer(train_args)
    fingerprint = encoder_fingerprint(train_args)
    train, _ = read_utterances(train_dirs, fingerprint, tokenizer)
    logging.info("%d utterances from %s", len(train), " ".join(map(str, train_dirs)))
    embedding = model.llm.causal_lm.get_input_embeddings().weight
    ctc = align_adapter(
        model.adapter, embedding, train, args.steps, args.batch_size, args.lr,
        args.warmup_steps, args.seed,
    )
    summary = {"steps": args.steps, "utterances": len(train), "vocab": len(ctc.vocab)}
    valid_dirs = asr_dirs(args.valid_data_dir)
    if valid_dirs:
        valid, refs = read_utterances(valid_dirs, fingerprint, tokenizer)
        summary["valid_greedy_ctc_wer"] = greedy_wer(model.adapter, ctc, valid, tokenizer, refs)
        logging.info("greedy CTC WER on %d validation utterances: %.1f %%",
                     len(valid), 100 * summary["valid_greedy_ctc_wer"])
    state = {f"adapter.{k}": v for k, v in model.adapter.state_dict().items()}
    with atomic_write(output, "wb") as f:
        torch.save(state, f)
    atomic_write_text(output.with_suffix(".json"), json.dumps(summary, indent=2) + "\n")
    logging.info("wrote %s", output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
