#!/usr/bin/env python3
"""Where a label task's learning stops: the audio, or the frozen LLM (issue #13).

Trains a stage-1 model (its config: frozen LLM, adapter and tag rows training) on one label
set with plain AdamW (constant lr after ``--warmup_steps``, no clipping) and prints the training loss and the
held-out accuracy of the label (greedy, teacher-forced). Two modes:

* ``audio``: the model as the recipe trains it;
* ``oracle``: the last adapter frame of each utterance is replaced by a learned vector of its
  *reference* label (one vector per label value, zero at start). The LLM then has the label
  in one clean input embedding; if it learns here and not in ``audio``, the frozen LLM and the
  tag rows are not what stops the label, the audio -> embedding mapping is.

Held-out accuracy in ``oracle`` mode also sees the reference label, so it measures only
whether the LLM path can carry a label, not the model.

What the adapter reads (``--encoder_cache``): ``true`` trains on the training dir's dumped
encoder outputs (``encoder_out.scp``, as the recipe trains with ``--encoder_cache true``: no
SpecAugment) and evaluates on the held-out audio encoded once the same way; ``false`` runs the
frontend (with its SpecAugment in training) and the encoder on the audio at every step;
``auto`` (default): ``true`` where the training dir has been dumped.

    cd egs2/echat/echat1
    python -m espnet2_echat.bin.diagnose_label_path \
        --config conf/small_real/train_stage1_understanding.yaml \
        --label gender --mode oracle --steps 60
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Dict, List, Optional

from espnet2_echat.data.datadir import read_kaldi_map
from espnet2_echat.data.task_registry import LABEL_BY_KIND
from espnet2_echat.inference.threads import add_nthreads_argument, set_nthreads


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a stage-1 training config")
    parser.add_argument("--label", default="gender", choices=sorted(LABEL_BY_KIND))
    parser.add_argument("--mode", default="audio", choices=("audio", "oracle"))
    parser.add_argument("--data_root", default="dump_small_real")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup_steps", type=int, default=0, help="linear lr warm-up")
    parser.add_argument(
        "--label_aux_weight", type=float, default=None,
        help="override the config's auxiliary label-head weight (models.label_heads)",
    )
    parser.add_argument("--num_train", type=int, default=0, help="0: every training utterance")
    parser.add_argument("--heldout_split", default="test", help="{split}_{label} is held out")
    parser.add_argument("--num_heldout", type=int, default=64)
    parser.add_argument("--eval_every", type=int, default=50)
    parser.add_argument(
        "--encoder_cache", default="auto", choices=("auto", "true", "false"),
        help="train on the dumped encoder outputs as the recipe does (see the module doc)",
    )
    add_nthreads_argument(parser)
    parser.add_argument("--seed", type=int, default=0)
    return parser


class LabelSet:
    """The utterances of ``{split}_{label}`` with their text, label and what the adapter reads:
    the waveform (``audio``) or, with ``encoder_outputs``, the frozen encoder's output."""

    def __init__(self, root: Path, split: str, label: str, limit: int, seed: int):
        import soundfile

        self.dir = root / f"{split}_{label}"
        kind = LABEL_BY_KIND[label]
        self.wavs = read_kaldi_map(self.dir / "wav.scp")
        self.text = read_kaldi_map(self.dir / "text")
        self.label = read_kaldi_map(self.dir / kind.file)
        self.task = read_kaldi_map(self.dir / "task")
        keys = sorted(self.wavs)
        random.Random(seed).shuffle(keys)
        self.keys = keys[:limit] if limit else keys
        self.audio = {k: soundfile.read(self.wavs[k], dtype="float32")[0] for k in self.keys}
        self.label_file = kind.file
        self.encoder_outputs: Optional[Dict] = None

    def use_dumped_outputs(self, fingerprint) -> None:
        """Read the dir's dumped encoder outputs (checked against ``fingerprint``)."""
        import numpy as np

        from espnet2_echat.train.encoder_cache import read_cache_scp

        paths = read_cache_scp(self.dir, fingerprint)
        self.encoder_outputs = {k: np.load(paths[k]).astype(np.float32) for k in self.keys}

    def encode_once(self, model) -> None:
        """Encode every utterance once, as the dump stage does (frontend without SpecAugment)."""
        import torch

        from espnet2_echat.train.encoder_cache import encode_wav

        was_training = model.frontend.training
        model.frontend.eval()
        with torch.no_grad():
            self.encoder_outputs = {
                k: encode_wav(model.frontend, model.encoder, self.wavs[k], k, self.dir)
                for k in self.keys
            }
        model.frontend.train(was_training)


def make_batch(data: LabelSet, keys: List[str], pre, collate) -> Dict:
    def sample(k: str) -> Dict:
        raw = {"task": data.task[k], "text": data.text[k], data.label_file: data.label[k]}
        if data.encoder_outputs is not None:
            raw["speech_enc"] = data.encoder_outputs[k]
        else:
            raw["speech"] = data.audio[k]
        return raw

    return collate([(k, pre(k, sample(k))) for k in keys])[1]


def uses_dumped_outputs(choice: str, train_dir: Path) -> bool:
    """``--encoder_cache``: ``auto`` is true where ``train_dir`` has been dumped."""
    from espnet2_echat.train.encoder_cache import CACHE_SCP

    return choice == "true" or (choice == "auto" and (train_dir / CACHE_SCP).is_file())


def label_accuracy(model, batch) -> float:
    """Share of samples whose label, every supervised token before the closing
    ``<|im_end|>`` (one token for an added tag, several for a spelled one), is greedy-right."""
    import torch

    from espnet2_echat.data.templates import IGNORE_ID
    from espnet2_echat.models.splice import unpad

    ids = unpad(batch["input_ids"], batch["input_ids_lengths"])
    tgts = unpad(batch["target"], batch["target_lengths"])
    audio = model.audio_per_sample(
        ids, batch.get("speech"), batch.get("speech_lengths"), None,
        batch.get("speech_enc"), batch.get("speech_enc_lengths"),
    )
    hidden, target = model.supervised_hidden(ids, tgts, audio)
    shifted = target[:, 1:]
    supervised = shifted != IGNORE_ID
    correct = torch.zeros_like(supervised)
    greedy = model.llm.joint_logits(hidden[:, :-1][supervised]).argmax(-1)
    correct[supervised] = greedy == shifted[supervised]
    right = []
    for row in range(len(shifted)):
        positions = supervised[row].nonzero().flatten()[:-1]
        right.append(bool(correct[row, positions].all()))
    return sum(right) / len(right)


def install_oracle(adapter, num_values: int, current: Dict):
    """Wrap ``adapter.forward`` so each row's last valid output frame is the learned vector of
    the label index ``current["label"][row]`` (set before each forward); returns the vectors
    (num_values, width), zero at start."""
    import torch

    adapter_forward = adapter.forward
    oracle = torch.nn.Parameter(torch.zeros(num_values, adapter.proj.out_features))

    def forward_with_oracle(x, lengths):
        out, out_lengths = adapter_forward(x, lengths)
        last = torch.arange(out.size(1), device=out.device)[None, :] == (out_lengths - 1)[:, None]
        vectors = oracle[current["label"]].to(out)[:, None]
        return torch.where(last[..., None], vectors, out), out_lengths

    adapter.forward = forward_with_oracle
    return oracle


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    import torch

    from espnet2_echat.tasks.echat import EChatTask

    set_nthreads(args.nthreads)
    overrides = []
    if args.label_aux_weight is not None:
        overrides = ["--label_aux_weight", str(args.label_aux_weight)]
    train_args = EChatTask.get_parser().parse_args(
        ["--config", args.config, "--output_dir", "/tmp/diagnose_label_path", *overrides]
    )
    torch.manual_seed(args.seed)
    model = EChatTask.build_model(train_args)
    pre = EChatTask.build_preprocess_fn(train_args, train=False)
    collate = EChatTask.build_collate_fn(train_args, train=False)
    root = Path(args.data_root)
    train = LabelSet(root, "train", args.label, args.num_train, args.seed)
    heldout = LabelSet(root, args.heldout_split, args.label, args.num_heldout, args.seed)
    if uses_dumped_outputs(args.encoder_cache, train.dir):
        from espnet2_echat.train.encoder_cache import encoder_fingerprint

        train.use_dumped_outputs(encoder_fingerprint(train_args))
        heldout.encode_once(model)
        print(f"encoder outputs: dumped ({train.dir}), held-out encoded once", flush=True)
    else:
        print("encoder outputs: computed from the audio at every step", flush=True)
    values = sorted(set(train.label.values()))
    params = [p for p in model.parameters() if p.requires_grad]
    current: Dict = {}
    if args.mode == "oracle":
        params.append(install_oracle(model.adapter, len(values), current))

    def batch_of(data: LabelSet, keys: List[str]):
        current["label"] = torch.tensor([values.index(data.label[k]) for k in keys])
        return make_batch(data, keys, pre, collate)

    optim = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    warmup = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda done: min(1.0, (done + 1) / max(args.warmup_steps, 1))
    )
    rng = random.Random(args.seed)
    for step in range(1, args.steps + 1):
        model.train()
        loss, stats, _ = model(**batch_of(train, rng.sample(train.keys, args.batch_size)))
        optim.zero_grad()
        loss.backward()
        optim.step()
        warmup.step()
        aux = f" label_aux {float(stats['loss_label_aux']):.3f}" if "loss_label_aux" in stats else ""
        print(f"step {step} loss {float(loss):.3f}{aux}", flush=True)
        if step % args.eval_every == 0 or step == args.steps:
            model.eval()
            with torch.no_grad():
                accs = [
                    label_accuracy(model, batch_of(heldout, heldout.keys[i : i + 16]))
                    * len(heldout.keys[i : i + 16])
                    for i in range(0, len(heldout.keys), 16)
                ]
            print(f"step {step} held-out {args.label} accuracy "
                  f"{100 * sum(accs) / len(heldout.keys):.1f} % of {len(heldout.keys)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
