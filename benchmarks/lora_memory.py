"""Peak memory of one LoRA training step, built and run as ESPnet's trainer does.

Checks the claim of ``conf/full/train_lora_24gb.yaml`` (LoRA fine-tuning of the full-size
model fits one 24 GB GPU) by measuring it::

    python -m benchmarks.lora_memory --out lora_memory.json           # CPU, 2000 tokens
    python -m benchmarks.lora_memory --tokens 250,500,1000            # CPU, fitted linearly
    python -m benchmarks.lora_memory --tokens 250,500,1000 --audio_seconds 0  # text input
    python -m benchmarks.lora_memory --device cuda --out lora_memory_gpu.json  # one GPU

Other options go to the task's parser as config overrides (``--use_amp false``, ...).
``benchmarks/lora_memory_cpu.json`` holds the CPU results quoted in the config and in
``benchmarks/README.md``.

The model is built from the config with ``EChatTask``'s own parser and ``build_model`` (LoRA,
trainable parts, gradient checkpointing as configured), cast to ``--train_dtype`` and moved
to the device as ``AbsTask.main_worker`` does. Weights are random: torch/transformers init is
skipped (``transformers.initialization.no_init_weights``; the tied LLM head is tied again,
as ``post_init`` would) and every parameter is then filled
with ``uniform_`` once, so that every page is really written (an untouched ``torch.empty``
page would not count in the resident set). Memory does not depend on the values.

A step is the one of ``espnet2.train.trainer.Trainer.train_one_epoch``: forward under
autocast when ``use_amp`` (bf16 where supported, as ESPnet's ``autocast_args``; on CPU
``torch.autocast("cpu", bfloat16)`` stands in for it), ``loss / accum_grad``, backward
(through ESPnet's ``GradScaler`` on CUDA), ``clip_grad_norm_(grad_clip)``, AdamW step with
``optim_conf`` (ESPnet gives it every parameter; only those with a gradient get state, which
is what is built here), ``zero_grad``. ``--steps 2`` (default) measures the second step too,
whose forward and backward run with the AdamW moments already allocated: the steady state.

The batch has ``--tokens`` estimated LLM positions (the sampler's ``batch_tokens`` unit,
``EChatPreprocessor.estimate_length``), split over ``--batch`` samples. Each sample is shaped
like an S2S sample: a 12-token text prompt around its audio, then a reply (a quarter text ids,
the rest speech-token ids) supervised on every position: the most logit rows the budget
allows. By default the audio is 30 s per 2000 tokens (scaled with ``--tokens``, so that every
activation grows linearly with the token count); ``--audio_seconds 0`` gives text-input
samples (TTS-like: every reply position supervised, no audio).

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (and ``max_memory_reserved``, the
caching allocator's slack included); on CPU the peak resident set size (``VmHWM``, reset per
phase through ``/proc/self/clear_refs``) above the resident size after imports, with glibc's
mmap threshold fixed at 128 KiB so that freed tensors go back to the kernel as freed CUDA
blocks go back to the allocator. Parameter, gradient and optimizer-state bytes are also summed
from the tensors themselves.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch

from espnet2_echat.data.templates import AUDIO_PLACEHOLDER, IGNORE_ID
from espnet2_echat.tasks.echat import EChatTask

REPO = Path(__file__).resolve().parents[1]
CONFIG = "conf/full/train_lora_24gb.yaml"
AUDIO_SECONDS_PER_2000_TOKENS = 30.0
PROMPT_BEFORE, PROMPT_AFTER = 8, 4  # text ids around the audio placeholder
GB = 1e9


# ----------------------------------------------------------------------------- memory meters
def _rss_status(field: str) -> int:
    """VmRSS / VmHWM of this process in bytes, from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _fix_glibc_mmap_threshold(threshold: int = 128 * 1024) -> bool:
    """Serve every allocation >= ``threshold`` by mmap and return it on free (glibc only).

    glibc otherwise raises its mmap threshold after the first large free (up to 32 MiB), so
    that later tensors below it come from heap arenas that are not given back: the resident
    set would keep freed activations and overstate the peak.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        fixed = bool(libc.mallopt(m_mmap_threshold, threshold)) and bool(
            libc.mallopt(m_trim_threshold, threshold)
        )
        # Give back the free heap that earlier work left resident: a later allocation would
        # otherwise reuse it without raising the resident set, and the peak would miss it.
        libc.malloc_trim(0)
        return fixed
    except (OSError, AttributeError):
        return False


def _warm_up() -> None:
    """Run the kinds of kernels a step runs, at toy size, before the baseline is taken: the
    libraries and code they load lazily (oneDNN, autocast, autograd) then count in it."""
    x = torch.randn(2, 8, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        w = torch.nn.Linear(16, 16)
        q = w(x).view(2, 2, 8, 8)
        y = torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)
        c = torch.nn.functional.conv1d(x.transpose(1, 2), torch.randn(16, 16, 3), padding=1)
        logits = torch.cat([y.reshape(16, 16), c.reshape(16, 16)], -1).float()
        loss = torch.nn.functional.cross_entropy(logits, torch.zeros(16, dtype=torch.long))
    loss.backward()
    torch.optim.AdamW(w.parameters(), foreach=True).step()


class Meter:
    """Peak memory per phase, in bytes above the baseline taken at construction."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        self.phases: Dict[str, Dict[str, float]] = {}
        if self.cuda:
            torch.cuda.synchronize(device)
            self.baseline = torch.cuda.memory_allocated(device)
            self.method = "torch.cuda.max_memory_allocated"
        else:
            self.glibc_fixed = _fix_glibc_mmap_threshold()
            _warm_up()
            self.can_reset = self._reset_hwm()
            self.baseline = _rss_status("VmRSS")
            self.method = (
                "peak resident set size (VmHWM, reset per phase via /proc/self/clear_refs)"
                if self.can_reset else "peak resident set size (ru_maxrss, not reset per phase)"
            )
        self.start()

    @staticmethod
    def _reset_hwm() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def start(self) -> None:
        self.t0 = time.perf_counter()
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_bytes = torch.cuda.memory_allocated(self.device)
        else:
            if self.can_reset:
                self._reset_hwm()
            self.start_bytes = _rss_status("VmRSS")

    def stop(self, phase: str) -> Dict[str, float]:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            now = torch.cuda.memory_allocated(self.device)
            extra = {"peak_reserved_gb": torch.cuda.max_memory_reserved(self.device) / GB}
        else:
            if self.can_reset:
                peak = _rss_status("VmHWM")
            else:
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            now = _rss_status("VmRSS")
            extra = {}
        self.phases[phase] = {
            "peak_gb": (peak - self.baseline) / GB,
            "after_gb": (now - self.baseline) / GB,
            # what the phase itself added at its peak (freed memory that the allocator kept
            # resident from an earlier phase is in the baseline of this one, not in its rise)
            "rise_gb": (peak - self.start_bytes) / GB,
            "seconds": time.perf_counter() - self.t0,
            **extra,
        }
        print(f"{phase}: " + ", ".join(f"{k} {v:.3f}" for k, v in self.phases[phase].items()),
              file=sys.stderr, flush=True)
        self.start()
        return self.phases[phase]


# ----------------------------------------------------------------------------- model and batch
def parse_config(config_args: Sequence[str]) -> argparse.Namespace:
    """The task's own parser over ``--config FILE`` and overrides (paths relative to REPO)."""
    return EChatTask.get_parser().parse_args(
        list(config_args) + ["--output_dir", os.devnull]
    )


def build_model(args: argparse.Namespace, device: torch.device, seed: int = 0):
    """EChatTask.build_model without weight init (same parameters, ties included), cast and
    moved as main_worker does, with every parameter then written once (random values)."""
    from transformers import PreTrainedModel
    from transformers.initialization import no_init_weights

    torch.manual_seed(seed)
    with no_init_weights():
        model = EChatTask.build_model(args)
    # no_init_weights also skips transformers' tie_weights (part of init_weights): tie as
    # post_init would, or the tied lm_head would be a second vocab x hidden matrix
    for module in model.modules():
        if isinstance(module, PreTrainedModel):
            module.tie_weights()
    model = model.to(dtype=getattr(torch, args.train_dtype), device=device)
    seen = set()
    with torch.no_grad():
        for p in model.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            if p.dim() == 1:
                p.fill_(1.0)  # norms' gains (biases too: values do not matter)
            else:
                bound = p.shape[-1] ** -0.5
                p.uniform_(-bound, bound)
    return model


def make_batch(
    model, args: argparse.Namespace, tokens: int, batch: int = 1,
    audio_seconds: Optional[float] = None, seed: int = 0,
) -> Tuple[Dict[str, torch.Tensor], Dict[str, float]]:
    """An S2S-shaped batch of ``tokens`` estimated LLM positions (see the module doc)."""
    g = torch.Generator().manual_seed(seed)
    speech_ids = model.llm.ids  # SpeechIds: V, K and the joint space
    vocab = speech_ids.text_vocab_size
    if audio_seconds is None:
        audio_seconds = AUDIO_SECONDS_PER_2000_TOKENS * tokens / 2000
    num_samples = int(round(audio_seconds * 16000))
    # EChatPreprocessor.estimate_length: adapter rows at 12.5 Hz replace the placeholder
    audio_rows = -(-(num_samples // 160) // 8) if num_samples else 0
    per_sample = tokens // batch
    n_ids = per_sample - audio_rows + (1 if num_samples else 0)
    prompt = PROMPT_BEFORE + PROMPT_AFTER + (1 if num_samples else 0)
    reply = n_ids - prompt
    if reply < 2:
        raise ValueError(
            f"{tokens} tokens in {batch} sample(s) leave no reply beside {audio_rows} audio rows"
        )
    n_text = max(1, reply // 4)
    ids, tgts = [], []
    for _ in range(batch):
        head = torch.randint(0, vocab, (PROMPT_BEFORE,), generator=g)
        tail = torch.randint(0, vocab, (PROMPT_AFTER,), generator=g)
        mid = torch.tensor([AUDIO_PLACEHOLDER]) if num_samples else torch.zeros(0, dtype=torch.long)
        text = torch.randint(0, vocab, (n_text,), generator=g)
        # joint ids of the speech head's classes (the tokens and the marker)
        speech = speech_ids.joint(0) + torch.randint(0, speech_ids.speech_token_num, (reply - n_text,), generator=g)
        sample = torch.cat([head, mid, tail, text, speech])
        target = sample.clone()
        target[:prompt] = IGNORE_ID
        ids.append(sample)
        tgts.append(target)
    lengths = torch.full((batch,), n_ids, dtype=torch.long)
    data = {
        "input_ids": torch.stack(ids), "input_ids_lengths": lengths,
        "target": torch.stack(tgts), "target_lengths": lengths.clone(),
    }
    if num_samples:
        data["speech"] = 0.1 * torch.randn(batch, num_samples, generator=g)
        data["speech_lengths"] = torch.full((batch,), num_samples, dtype=torch.long)
    shape = {
        "tokens": tokens, "batch": batch, "audio_seconds": audio_seconds,
        "audio_rows_estimated": audio_rows, "ids_per_sample": n_ids,
        "supervised_rows": batch * (reply - 1),  # the loss shifts by one position
        "text_targets_per_sample": n_text, "speech_targets_per_sample": reply - n_text,
    }
    return data, shape


def tensor_bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if t is None or id(t) in seen:
            continue
        seen.add(id(t))
        total += t.numel() * t.element_size()
    return total


def amp_context(args: argparse.Namespace, device: torch.device):
    """ESPnet's autocast for the device (None: no autocast) and a GradScaler (CUDA only)."""
    if not args.use_amp:
        return None, None
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return (dtype, torch.amp.GradScaler("cuda"))
    return (torch.bfloat16, None)


# ----------------------------------------------------------------------------- the step
def run_steps(model, args, meter: Meter, tokens: int, batch: int = 1,
              audio_seconds: Optional[float] = None, steps: int = 2, seed: int = 0):
    """``steps`` training steps on one batch of ``tokens``, each phase measured; returns the
    run's report and its optimizer (a fresh AdamW: its state is this run's)."""
    dev = meter.device
    params = list({id(p): p for p in model.parameters()}.values())
    trainable = [p for p in params if p.requires_grad]
    data, shape = make_batch(model, args, tokens, batch, audio_seconds, seed)
    data = {k: v.to(dev) for k, v in data.items()}
    audio_rows = []
    hook = model.adapter.register_forward_hook(lambda m, i, o: audio_rows.append(o[0].shape[1]))
    if args.optim != "adamw":
        raise ValueError(f"{args.optim}: only adamw (the configs' optimiser) is built here")
    # foreach: CUDA's default implementation, forced on CPU too (its temporaries count)
    optimizer = torch.optim.AdamW(trainable, foreach=True, **dict(args.optim_conf))
    amp_dtype, scaler = amp_context(args, dev)
    autocast = (
        (lambda: torch.autocast(dev.type, dtype=amp_dtype)) if amp_dtype is not None
        else contextlib.nullcontext
    )
    model.train()
    step_reports = []
    meter.start()
    for step in range(steps):
        with autocast():
            loss, stats, weight = model(**data)
            loss = loss / args.accum_grad
        fwd = meter.stop("forward")
        if scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
        loss_value = float(loss.detach())
        del loss, stats, weight
        bwd = meter.stop("backward")
        grad_bytes = tensor_bytes(p.grad for p in params)
        if scaler is not None:
            scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, max_norm=args.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad()
        opt = meter.stop("optimizer_step")
        step_reports.append({
            "step": step + 1, "loss": loss_value * args.accum_grad,
            "grad_norm": float(grad_norm), "grad_bytes_gb": grad_bytes / GB,
            "forward": fwd, "backward": bwd, "optimizer_step": opt,
            "peak_gb": max(fwd["peak_gb"], bwd["peak_gb"], opt["peak_gb"]),
        })
    hook.remove()
    state_bytes = tensor_bytes(
        t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)
    )
    peak = max(s["peak_gb"] for s in step_reports)
    positions = shape["ids_per_sample"] + (audio_rows[0] - 1 if audio_rows else 0)
    run = {
        "tokens": tokens,
        "batch_shape": {**shape, "audio_rows": audio_rows[:1], "llm_positions": positions},
        "autocast": None if amp_dtype is None else f"{dev.type} {str(amp_dtype)[6:]}",
        "grad_scaler": scaler is not None,
        "optimizer_state_bytes_gb": state_bytes / GB,
        "steps": step_reports,
        "peak_gb": peak,
        "peak_above_params_and_optimizer_state_gb":
            peak - (tensor_bytes(params) + state_bytes) / GB,
    }
    return run, optimizer


def linear_fit(runs: Sequence[dict], at: int) -> dict:
    """Least-squares peak_gb = a + b * tokens over the runs, and its value at ``at``."""
    xs = [r["tokens"] for r in runs]
    ys = [r["peak_gb"] for r in runs]
    n, mx, my = len(xs), sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    a = my - b * mx
    worst = max(abs(y - (a + b * x)) for x, y in zip(xs, ys))
    return {"peak_gb_at_0_tokens": a, "gb_per_1000_tokens": 1000 * b,
            "max_residual_gb": worst, "tokens": at, "peak_gb": a + b * at}


def measure_step(
    config_args: Sequence[str] = ("--config", CONFIG),
    tokens: Union[None, int, Sequence[int]] = None,
    batch: int = 1,
    audio_seconds: Optional[float] = None,
    steps: int = 2,
    device: str = "cpu",
    seed: int = 0,
):
    """Build once, run ``steps`` training steps per token count (ascending) and measure;
    returns (report, model, the last run's optimizer)."""
    dev = torch.device(device)
    args = parse_config(config_args)
    counts = sorted([tokens] if isinstance(tokens, int) else list(tokens or [args.batch_tokens]))
    meter = Meter(dev)
    model = build_model(args, dev, seed)
    build = meter.stop("build")
    params = list({id(p): p for p in model.parameters()}.values())
    trainable = [p for p in params if p.requires_grad]
    runs, optimizer = [], None
    for n in counts:
        optimizer = None  # the previous run's moments go before the next run
        run, optimizer = run_steps(model, args, meter, n, batch, audio_seconds, steps, seed)
        runs.append(run)
    report = {
        "config": list(config_args),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "method": meter.method,
        **({"glibc_mmap_threshold_fixed": meter.glibc_fixed} if dev.type == "cpu" else {}),
        "train_dtype": args.train_dtype,
        "use_amp": args.use_amp,
        "autocast": runs[0]["autocast"],
        "gradient_checkpointing": args.gradient_checkpointing,
        "llm_layers_checkpointed": _checkpointed_layers(model.llm.causal_lm),
        "use_lora": args.use_lora,
        "lora_conf": args.lora_conf,
        "trainable_parts": args.trainable_parts,
        "batch_tokens": args.batch_tokens,
        "params": sum(p.numel() for p in params),
        "trainable_params": sum(p.numel() for p in trainable),
        "param_bytes_gb": tensor_bytes(params) / GB,
        "trainable_param_bytes_gb": tensor_bytes(trainable) / GB,
        "baseline_gb": meter.baseline / GB,
        "build": build,
        "runs": runs,
        "peak_gb": max(r["peak_gb"] for r in runs),
    }
    if len(counts) > 1:
        report["linear_fit"] = linear_fit(runs, args.batch_tokens)
    if dev.type == "cuda":  # the device's use beyond this process's tensors: context etc.
        free, total = torch.cuda.mem_get_info(dev)
        report["cuda_used_beyond_reserved_gb"] = (
            total - free - torch.cuda.memory_reserved(dev)
        ) / GB
        report["cuda_total_gb"] = total / GB
    if dev.type == "cpu":  # what stays resident: anonymous (tensors) vs file-backed (code)
        report["resident_at_end_gb"] = {
            k: _rss_status(k) / GB for k in ("VmRSS", "RssAnon", "RssFile")
        }
    return report, model, optimizer


def _checkpointed_layers(causal_lm) -> int:
    from transformers.modeling_layers import GradientCheckpointingLayer

    return sum(
        isinstance(m, GradientCheckpointingLayer) and bool(m.gradient_checkpointing)
        for m in causal_lm.modules()
    )


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu"


def main(argv: Optional[List[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=CONFIG, help="training config (relative to the repo)")
    parser.add_argument("--tokens", default=None,
                        help="estimated LLM positions in the batch (default: batch_tokens); "
                        "several, comma-separated, measure each on the one model and fit "
                        "the peak linearly to batch_tokens")
    parser.add_argument("--batch", type=int, default=1, help="samples sharing the tokens")
    parser.add_argument("--audio_seconds", type=float, default=None,
                        help="audio per sample (default: 30 s per 2000 tokens)")
    parser.add_argument("--steps", type=int, default=2,
                        help="training steps per token count (2: the second has AdamW state)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    # any other option goes to the task's parser as a config override (--use_amp false, ...)
    opts, overrides = parser.parse_known_args(argv)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    os.chdir(REPO)
    report, _, _ = measure_step(
        ["--config", opts.config] + overrides,
        [int(t) for t in opts.tokens.split(",")] if opts.tokens else None, opts.batch,
        opts.audio_seconds, opts.steps, opts.device,
    )
    text = json.dumps(report, indent=2)
    print(text)
    if opts.out:
        opts.out.write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
    sys.stdout.flush()
