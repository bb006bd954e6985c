"""Where one small_real training step spends its time (issue #13): frontend + encoder,
adapter, LLM forward + loss, backward, optimiser, per torch thread count, for three paths:
the full sequence in float32 (``reuse 0 float32``), the frozen prefix's key/values reused
(``--reuse_frozen_prefix``, the default: ``reuse 1 float32``) and that with the LLM body under
bfloat16 autocast (``--llm_compute_dtype bfloat16``: ``reuse 1 bfloat16``).

Usage (from the recipe's dump of the mini corpus, or any data dir the mini corpus makes)::

    python benchmarks/small_real_step.py --data_dir egs2/echat/echat1/dump/train_asr \
        --config conf/small_real/train_stage1_understanding.yaml --batch 8 --threads 1 2

Each repeat runs one step of every (threads, path) variant back to back, in an order
that alternates between repeats, so that the variants share the machine's load. Prints per
variant and part the median and spread (min-max) of wall and process CPU time over
``--repeats`` steps (a first, warm-up round dropped: it also fills the prefix cache), then per
variant the median (min-max) of its step time divided by the first variant's in the same
repeat.
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


PARTS = ("encoder", "adapter", "llm_fwd_loss", "backward", "optim", "step")


def one_step(model, batch, optim) -> Dict[str, List[float]]:
    """One training step on ``batch``, timed per part."""
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
            hidden, target = model.supervised_hidden(ids, tg, audio)
            loss, _ = model.loss(hidden, target)
        with timed(t, "backward"):
            optim.zero_grad()
            loss.backward()
        with timed(t, "optim"):
            optim.step()
    return t


def profile(args) -> None:
    from espnet2_echat.models.frozen_prefix import FrozenPrefixCache
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
    paths = [(False, "float32"), (True, "float32"), (True, "bfloat16")]
    variants = [(threads, *path) for threads in args.threads for path in paths]
    times = {v: {} for v in variants}
    # one prefix cache per variant: a cache is emptied when the autocast dtype changes
    caches = {v: FrozenPrefixCache() for v in variants}
    for repeat in range(args.repeats + 1):
        order = variants if repeat % 2 == 0 else variants[::-1]
        for variant in order:
            threads, model.reuse_frozen_prefix, model.llm_compute_dtype = variant
            model.prefix_cache = caches[variant]
            torch.set_num_threads(threads)
            t = one_step(model, batch, optim)
            if repeat:  # the first round warms up (and fills the prefix cache)
                for k, v in t.items():
                    times[variant].setdefault(k, []).extend(v)
    for variant, cache in caches.items():
        if variant[1]:
            print(f"prefix cache {variant}: {len(cache.entries)} prefixes, "
                  f"{cache.bytes / 2**20:.1f} MiB, {cache.hits} hits, {cache.misses} misses")
    def name(variant):
        return f"threads {variant[0]} reuse {int(variant[1])} {variant[2]}"

    for variant, parts in times.items():
        for part in PARTS:
            w, c = parts[part + "_wall"], parts[part + "_cpu"]
            print(f"{name(variant)} {part:13s} wall "
                  f"{statistics.median(w):6.2f} s ({min(w):.2f}-{max(w):.2f})  cpu "
                  f"{statistics.median(c):6.2f} s ({min(c):.2f}-{max(c):.2f})")
    base = times[variants[0]]
    for v in variants[1:]:
        for kind in ("wall", "cpu"):
            r = [a / b for a, b in zip(times[v]["step_" + kind], base["step_" + kind])]
            print(f"{name(v)} step {kind} / {name(variants[0])}: "
                  f"{statistics.median(r):.2f} ({min(r):.2f}-{max(r):.2f})")


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
