"""Where one small_real training step spends its time (issue #13): frontend + encoder,
adapter, LLM forward + loss, backward, optimiser, per torch thread count.

Usage (from the recipe's dump of the mini corpus)::

    python benchmarks/small_real_step.py --data_dir egs2/echat/echat1/dump/train_asr \
        --config conf/small_real/train_stage1_understanding.yaml --batch 8 --threads 1 2

Prints one line per thread count and part: median and spread (min-max) of wall and process
CPU time over ``--repeats`` steps (the first, warm-up step dropped).
"""

import argparse
import statistics
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, List

import soundfile as sf
import torch


@contextmanager
def timed(out: Dict[str, List[float]], name: str):
    w, c = time.perf_counter(), time.process_time()
    yield
    out.setdefault(name + "_wall", []).append(time.perf_counter() - w)
    out.setdefault(name + "_cpu", []).append(time.process_time() - c)


def load_batch(args, data_dir: Path, n: int, pre, collate):
    wavs = [line.split(maxsplit=1) for line in (data_dir / "wav.scp").read_text().splitlines()]
    files = {}
    for name in ("task", "text", "utt2gender", "utt2age", "utt2emotion", "utt2event"):
        if (data_dir / name).exists():
            files[name] = dict(
                line.split(maxsplit=1) for line in (data_dir / name).read_text().splitlines()
            )
    samples = []
    for utt, path in wavs[:n]:
        wav, _ = sf.read(path, dtype="float32")
        data = {"speech": wav, **{k: v[utt] for k, v in files.items() if utt in v}}
        samples.append((utt, pre(utt, data)))
    return collate(samples)[1]


def profile(args) -> None:
    from espnet2_echat.tasks.echat import EChatTask

    targs = EChatTask.get_parser().parse_args(
        ["--config", args.config, "--output_dir", "/tmp/small_real_step"] + args.extra
    )
    torch.manual_seed(0)
    model = EChatTask.build_model(targs)
    pre = EChatTask.build_preprocess_fn(targs, train=False)
    collate = EChatTask.build_collate_fn(targs, train=False)
    batch = load_batch(targs, Path(args.data_dir), args.batch, pre, collate)
    params = [p for p in model.parameters() if p.requires_grad]
    print(f"batch {args.batch}: speech {tuple(batch['speech'].shape)}, ids "
          f"{tuple(batch['input_ids'].shape)}; trainable {sum(p.numel() for p in params)/1e6:.2f} M"
          f" of {sum(p.numel() for p in model.parameters())/1e6:.1f} M")
    optim = torch.optim.AdamW(params, lr=1e-4)
    model.train()
    for threads in args.threads:
        torch.set_num_threads(threads)
        times: Dict[str, List[float]] = {}
        for step in range(args.repeats + 1):
            t: Dict[str, List[float]] = {}
            with timed(t, "step"):
                with timed(t, "encoder"):
                    ids = [i[: int(n)] for i, n in zip(batch["input_ids"], batch["input_ids_lengths"])]
                    tg = [i[: int(n)] for i, n in zip(batch["target"], batch["target_lengths"])]
                    feats, flen = model.frontend(batch["speech"], batch["speech_lengths"])
                    enc, elen = model.encoder(feats, flen)
                with timed(t, "adapter"):
                    emb, elen2 = model.adapter(enc, elen)
                with timed(t, "llm_fwd_loss"):
                    audio = [e[: int(n)] for e, n in zip(emb, elen2)]
                    packed = model.build_inputs(ids, audio, tg)
                    hidden = model.llm.hidden_states(
                        packed.inputs_embeds, packed.attention_mask, packed.position_ids
                    ).last_hidden_state
                    loss, _ = model.loss(hidden, packed.target)
                with timed(t, "backward"):
                    optim.zero_grad()
                    loss.backward()
                with timed(t, "optim"):
                    optim.step()
            if step:  # the first step warms up
                for k, v in t.items():
                    times.setdefault(k, []).extend(v)
        for part in ("encoder", "adapter", "llm_fwd_loss", "backward", "optim", "step"):
            w, c = times[part + "_wall"], times[part + "_cpu"]
            print(f"threads {threads} {part:13s} wall {statistics.median(w):6.2f} s "
                  f"({min(w):.2f}-{max(w):.2f})  cpu {statistics.median(c):6.2f} s "
                  f"({min(c):.2f}-{max(c):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--config", default="conf/small_real/train_stage1_understanding.yaml")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="further echat_train options (e.g. --use_lora true)")
    profile(parser.parse_args())


if __name__ == "__main__":
    main()
