"""Real-time factor of token2wav at the real CosyVoice-300M-25Hz size (random weights).

Variants of the same weights, timed side by side in one run (each repeat runs every variant
once, in turn, so a drift of a shared machine hits them alike; ratios are medians of the
per-repeat ratios to the first variant, with their min-max):

* ``reference_ops``: float32 eager with the reference's arithmetic (the attention gets
  CosyVoice's additive key bias even when nothing is padded), i.e. the reference's work;
* ``fp32``: this project's default (no bias without padding: the unmasked kernel);
* ``bf16``: what ``--matmul_dtype bfloat16`` runs: ``ConditionalDecoder.set_matmul_dtype``
  (the estimator's transformer products in bfloat16, on CPU the attention in blocks of 128
  queries; its residuals, norms and convolutions float32) and ``HiFTGenerator.set_conv_dtype``
  (HiFT's convolutions in bfloat16);
* ``bf16_sdpa``: the same with the attention through ``scaled_dot_product_attention``;
* ``onnx``: the float32 estimator exported with ``torch.onnx`` and run by ONNX Runtime
  (``--estimator_backend onnx``);
* ``bf16_compiled`` (``--compile``): the same estimator under ``torch.compile`` for this
  one length, and ``bf16_compiled_dynamic`` with symbolic lengths (one program for all).

Offline synthesis of ``--tokens`` speech tokens with a 3 s speaker prompt (75 tokens, 258
mel frames, as OSUM-EChat), ``--steps`` Euler steps (10: the reference), the same noise for
every variant. Per part: flow encoder + length regulator, the estimator's Euler loop, HiFT.
Error of each variant's mel and waveform against ``fp32`` (same noise) is reported.

Run: ``python -m benchmarks.token2wav_rtf [--tokens 100] [--steps 10] [--threads 2]
[--repeats 5] [--compile] [--out benchmarks/token2wav_rtf_cpu.json]``.
"""

import argparse
import copy
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Dict

import torch
import yaml

from espnet2_echat.models.token2wav.espnet_model import ESPnetToken2WavModel
from espnet2_echat.models.token2wav.estimator import Attention, ConditionalDecoder
from espnet2_echat.models.token2wav.hift import HiFTGenerator
from espnet2_echat.models.token2wav.onnx_estimator import OnnxEstimator

CONF = (
    Path(__file__).resolve().parents[1]
    / "conf"
    / "token2wav"
    / "cosyvoice_300m_25hz.yaml"
)


class ReferenceOpsDecoder(ConditionalDecoder):
    """The estimator with CosyVoice's attention bias always applied (zeros unpadded)."""

    @staticmethod
    def _key_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return ((1.0 - mask.to(dtype)) * -1.0e10).unsqueeze(1)


class SdpaAttention(Attention):
    """The attention through ``scaled_dot_product_attention`` in every dtype (what ``bf16``
    ran before its CPU bfloat16 attention in query blocks)."""

    def forward(self, x: torch.Tensor, bias):
        b, t, _ = x.shape
        q, k, v = (
            proj(x).view(b, t, self.heads, -1).transpose(1, 2)
            for proj in (self.to_q, self.to_k, self.to_v)
        )
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.to_out[0](out.transpose(1, 2).reshape(b, t, -1))


def variant_estimators(model, compile_: bool) -> Dict[str, torch.nn.Module]:
    """The estimators compared (copies of ``model``'s, the same weights)."""
    base = model.flow.decoder.estimator
    ref = copy.deepcopy(base)
    ref.__class__ = ReferenceOpsDecoder
    bf16 = copy.deepcopy(base)
    bf16.set_matmul_dtype(torch.bfloat16)
    bf16_sdpa = copy.deepcopy(bf16)
    for module in bf16_sdpa.modules():
        if isinstance(module, Attention):
            module.__class__ = SdpaAttention
    out = {
        "reference_ops": ref, "fp32": base, "bf16": bf16, "bf16_sdpa": bf16_sdpa,
        "onnx": OnnxEstimator(base),
    }
    if compile_:
        out["bf16_compiled"] = torch.compile(copy.deepcopy(bf16), dynamic=False)
        # one program for every length (what a user's utterances of varied lengths need)
        out["bf16_compiled_dynamic"] = torch.compile(copy.deepcopy(bf16), dynamic=True)
    return out


def bf16_vocoder(model, model_conf: dict) -> torch.nn.Module:
    """A copy of ``model``'s HiFT with its convolutions in bfloat16."""
    hift = HiFTGenerator(**model_conf.get("hift_conf", {})).eval()
    hift.load_state_dict(model.hift.state_dict())
    hift.set_conv_dtype(torch.bfloat16)
    return hift


def synthesize_timed(model, estimator, tokens, prompt, noise, steps: int, vocoder=None) -> dict:
    """Offline synthesis with ``estimator`` in the flow and ``vocoder`` (default: the
    model's HiFT); per-part seconds and outputs."""
    flow = model.flow
    t0 = time.perf_counter()
    c = flow.conditions(tokens, *prompt)
    t1 = time.perf_counter()
    flow.decoder.estimator = estimator
    mel = flow.decoder.solve_euler(noise, c.mu, c.mask, c.spks, c.cond, steps)
    mel = mel[:, :, c.mel_len1 :]
    t2 = time.perf_counter()
    wav, _ = (vocoder or model.hift).inference(mel, generator=torch.Generator().manual_seed(0))
    t3 = time.perf_counter()
    return {
        "encoder_s": t1 - t0,
        "estimator_s": t2 - t1,
        "hift_s": t3 - t2,
        "total_s": t3 - t0,
        "mel": mel,
        "wav": wav,
    }


def spread(values) -> dict:
    """Median, min and max of a list."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=100, help="speech tokens (25 Hz)")
    parser.add_argument("--steps", type=int, default=10, help="Euler steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="add bf16_compiled")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    conf = yaml.safe_load(CONF.read_text(encoding="utf-8"))["model_conf"]
    model = ESPnetToken2WavModel(**conf).eval()
    prompt = (
        torch.randint(0, 4096, (1, 75)),
        torch.randn(1, 258, 80) - 5.0,
        torch.randn(1, 192),
    )
    tokens = torch.randint(0, 4096, (1, args.tokens))
    frames = prompt[1].shape[1] + model.flow.num_mel_frames(args.tokens)
    noise = torch.randn(1, 80, frames, generator=torch.Generator().manual_seed(1))
    variants = variant_estimators(model, args.compile)
    low_hift = bf16_vocoder(model, conf)
    run: Callable[[str, torch.nn.Module], dict] = lambda name, est: synthesize_timed(
        model, est, tokens, prompt, noise, args.steps, low_hift if name.startswith("bf16") else None
    )
    load_before = os.getloadavg()
    with torch.no_grad():
        # the batch of every estimator call in the warm-up's fp32 synthesis: classifier-free
        # guidance runs the conditional and unconditional rows in one call (steps x batch 2)
        cfg_batches = []
        hook = variants["fp32"].register_forward_pre_hook(
            lambda module, inputs: cfg_batches.append(inputs[0].shape[0])
        )
        outputs = {name: run(name, est) for name, est in variants.items()}  # warm-up
        hook.remove()
        times = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, est in variants.items():
                times[name].append(run(name, est))
    load_after = os.getloadavg()
    audio_s = outputs["fp32"]["wav"].shape[1] / model.sample_rate
    ref_mel, ref_wav = outputs["fp32"]["mel"], outputs["fp32"]["wav"]
    rows = {}
    for name, runs in times.items():
        base = times["reference_ops"]
        out = outputs[name]
        rows[name] = {
            **{
                part: spread([r[part] for r in runs])
                for part in ("encoder_s", "estimator_s", "hift_s", "total_s")
            },
            "rtf": spread([r["total_s"] / audio_s for r in runs]),
            "rtf_vs_reference_ops": spread(
                [r["total_s"] / b["total_s"] for r, b in zip(runs, base)]
            ),
            "estimator_vs_reference_ops": spread(
                [r["estimator_s"] / b["estimator_s"] for r, b in zip(runs, base)]
            ),
            "estimator_per_step_s": spread([r["estimator_s"] / args.steps for r in runs]),
            "estimator_share": spread([r["estimator_s"] / r["total_s"] for r in runs]),
            "mel_max_abs_err_vs_fp32": float((out["mel"] - ref_mel).abs().max()),
            "mel_mean_abs_err_vs_fp32": float((out["mel"] - ref_mel).abs().mean()),
            "wav_max_abs_err_vs_fp32": float((out["wav"] - ref_wav).abs().max()),
            "wav_mean_abs_err_vs_fp32": float((out["wav"] - ref_wav).abs().mean()),
        }
    result = {
        "model": "CosyVoice-300M-25Hz size, random weights",
        "command": "python -m benchmarks.token2wav_rtf " + " ".join(
            f"--{k} {v}" for k, v in vars(args).items() if k != "out" and v is not False
        ),
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "repeats": args.repeats,
        "steps": args.steps,
        "audio_s": audio_s,
        "prompt_frames": prompt[1].shape[1],
        "mel_std_fp32": float(ref_mel.std()),
        "wav_mean_abs_fp32": float(ref_wav.abs().mean()),
        "estimator_call_batches": cfg_batches,
        "load_average_before_after": [load_before[0], load_after[0]],
        "torch": torch.__version__,
        "rows": rows,
    }
    print(json.dumps(result, indent=1))
    print(
        "\n| variant | RTF (median, min-max) | total / reference_ops | estimator / reference_ops "
        "| estimator share | HiFT s | mel mean abs err vs fp32 | wav mean abs err / mean abs |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        f = lambda s: f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"
        print(
            f"| {name} | {f(r['rtf'])} | {f(r['rtf_vs_reference_ops'])} | "
            f"{f(r['estimator_vs_reference_ops'])} | {r['estimator_share']['median']:.2f} | "
            f"{r['hift_s']['median']:.2f} | {r['mel_mean_abs_err_vs_fp32']:.2e} | "
            f"{r['wav_mean_abs_err_vs_fp32'] / result['wav_mean_abs_fp32']:.2e} |"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
