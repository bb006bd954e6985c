#!/usr/bin/env python3
"""Where a label task's learning stops: the audio, or the frozen LLM (issue #13).

Trains a stage-1 model (its config: frozen LLM, adapter and tag rows training) on one label
set with plain AdamW (constant lr, no clipping) and prints the training loss and the
held-out accuracy of the label (greedy, teacher-forced). Two modes:

* ``audio``: the model as the recipe trains it;
* ``oracle``: the last adapter frame of each utterance is replaced by a learned vector of its
  *reference* label (one vector per label value, zero at start). The LLM then has the label
  in one clean input embedding; if it learns here and not in ``audio``, the frozen LLM and the
  tag rows are not what stops the label, the audio -> embedding mapping is.

Held-out accuracy in ``oracle`` mode also sees the reference label, so it measures only
whether the LLM path can carry a label, not the model.

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
from typing import Dict, List

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
    parser.add_argument("--num_train", type=int, default=0, help="0: every training utterance")
    parser.add_argument("--heldout_split", default="test", help="{split}_{label} is held out")
    parser.add_argument("--num_heldout", type=int, default=64)
    parser.add_argument("--eval_every", type=int, default=50)
    add_nthreads_argument(parser)
    parser.add_argument("--seed", type=int, default=0)
    return parser


class LabelSet:
    """The utterances of ``{split}_{label}`` with their text, label and waveform."""

    def __init__(self, root: Path, split: str, label: str, limit: int, seed: int):
        import soundfile

        d = root / f"{split}_{label}"
        kind = LABEL_BY_KIND[label]
        wavs = read_kaldi_map(d / "wav.scp")
        self.text = read_kaldi_map(d / "text")
        self.label = read_kaldi_map(d / kind.file)
        self.task = read_kaldi_map(d / "task")
        keys = sorted(wavs)
        random.Random(seed).shuffle(keys)
        self.keys = keys[:limit] if limit else keys
        self.audio = {k: soundfile.read(wavs[k], dtype="float32")[0] for k in self.keys}
        self.label_file = kind.file


def make_batch(data: LabelSet, keys: List[str], pre, collate) -> Dict:
    samples = [
        (k, pre(k, {"task": data.task[k], "text": data.text[k],
                    data.label_file: data.label[k], "speech": data.audio[k]}))
        for k in keys
    ]
    return collate(samples)[1]


def label_accuracy(model, batch) -> float:
    """Share of samples whose label, every supervised token before the closing
    ``<|im_end|>`` (one token for an added tag, several for a spelled one), is greedy-right."""
    import torch

    from espnet2_echat.data.templates import IGNORE_ID
    from espnet2_echat.models.splice import unpad

    ids = unpad(batch["input_ids"], batch["input_ids_lengths"])
    tgts = unpad(batch["target"], batch["target_lengths"])
    audio = model.audio_per_sample(ids, batch["speech"], batch["speech_lengths"])
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
    train_args = EChatTask.get_parser().parse_args(
        ["--config", args.config, "--output_dir", "/tmp/diagnose_label_path"]
    )
    torch.manual_seed(args.seed)
    model = EChatTask.build_model(train_args)
    pre = EChatTask.build_preprocess_fn(train_args, train=False)
    collate = EChatTask.build_collate_fn(train_args, train=False)
    root = Path(args.data_root)
    train = LabelSet(root, "train", args.label, args.num_train, args.seed)
    heldout = LabelSet(root, args.heldout_split, args.label, args.num_heldout, args.seed)
    values = sorted(set(train.label.values()))
    params = [p for p in model.parameters() if p.requires_grad]
    current: Dict = {}
    if args.mode == "oracle":
        params.append(install_oracle(model.adapter, len(values), current))

    def batch_of(data: LabelSet, keys: List[str]):
        current["label"] = torch.tensor([values.index(data.label[k]) for k in keys])
        return make_batch(data, keys, pre, collate)

    optim = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    rng = random.Random(args.seed)
    for step in range(1, args.steps + 1):
        model.train()
        loss, _, _ = model(**batch_of(train, rng.sample(train.keys, args.batch_size)))
        optim.zero_grad()
        loss.backward()
        optim.step()
        print(f"step {step} loss {float(loss):.3f}", flush=True)
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
