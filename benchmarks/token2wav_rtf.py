"""Real-time factor of token2wav at the real CosyVoice-300M-25Hz size (random weights).

Measured in one run on the same model (fp32, batch 1, CPU unless ``--device``):

* offline: ``ESPnetToken2WavModel.synthesize`` of ``--tokens`` speech tokens; RTF =
  wall time / audio duration, split into flow and HiFT time;
* streaming: time from the call to the first yielded chunk (first-chunk latency: 70 tokens
  = 50 hop + 20 overlap, as CosyVoice) and the RTF of the whole chunked utterance;

each for 10 Euler steps (the reference) and fewer (``--steps``). A 3 s speaker prompt
(75 tokens, 258 mel frames) is used, as in OSUM-EChat. Every figure is the minimum over
``--repeats`` runs (the machine is shared; the minimum is the least disturbed run).

Run: ``python -m benchmarks.token2wav_rtf [--tokens 250] [--steps 10 5 2] [--threads 2]
[--out benchmarks/token2wav_rtf.json] [--plot benchmarks/token2wav_rtf.png]``.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
import yaml

from espnet2_echat.models.token2wav.espnet_model import ESPnetToken2WavModel
from espnet2_echat.models.token2wav.speaker_prompt import SpeakerPrompt

CONF = (
    Path(__file__).resolve().parents[1]
    / "conf"
    / "token2wav"
    / "cosyvoice_300m_25hz.yaml"
)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(model, tokens, prompt, steps: int, device: str) -> dict:
    """Offline and streaming timings for one number of Euler steps."""
    g = torch.Generator(device=device).manual_seed(0)
    _sync(device)
    t0 = time.perf_counter()
    mel = model.flow.inference(
        tokens,
        prompt.prompt_token,
        prompt.prompt_feat,
        prompt.embedding,
        generator=g,
        n_timesteps=steps,
    )
    _sync(device)
    t1 = time.perf_counter()
    wav, _ = model.hift.inference(mel, generator=g)
    _sync(device)
    t2 = time.perf_counter()
    duration = wav.shape[1] / model.sample_rate
    stream = model.synthesize_stream(
        [tokens[0].tolist()], prompt, n_timesteps=steps, generator=g
    )
    t3 = time.perf_counter()
    first = next(stream)
    _sync(device)
    t4 = time.perf_counter()
    total = first.shape[1] + sum(c.shape[1] for c in stream)
    _sync(device)
    t5 = time.perf_counter()
    return {
        "steps": steps,
        "audio_s": duration,
        "offline_flow_s": t1 - t0,
        "offline_hift_s": t2 - t1,
        "offline_rtf": (t2 - t0) / duration,
        "first_chunk_latency_s": t4 - t3,
        "first_chunk_audio_s": first.shape[1] / model.sample_rate,
        "stream_rtf": (t5 - t3) / (total / model.sample_rate),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--tokens", type=int, default=250, help="speech tokens (25 Hz) to synthesise"
    )
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 5, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    conf = yaml.safe_load(CONF.read_text(encoding="utf-8"))["model_conf"]
    model = ESPnetToken2WavModel(**conf).eval().to(args.device)
    params = {
        name: sum(p.numel() for p in getattr(model, name).parameters())
        for name in ("flow", "hift")
    }
    prompt = SpeakerPrompt(
        torch.randint(0, 4096, (1, 75), device=args.device),
        torch.randn(1, 258, 80, device=args.device) - 5.0,
        torch.randn(1, 192, device=args.device),
    )
    tokens = torch.randint(0, 4096, (1, args.tokens), device=args.device)
    with torch.no_grad():
        measure(model, tokens[:, :40], prompt, 2, args.device)  # warm-up
        rows = []
        for steps in args.steps:
            runs = [
                measure(model, tokens, prompt, steps, args.device)
                for _ in range(args.repeats)
            ]
            rows.append({k: min(r[k] for r in runs) for k in runs[0]})
    result = {
        "model": "CosyVoice-300M-25Hz size, random weights, fp32",
        "params": params,
        "device": (
            args.device
            if args.device != "cpu"
            else f"cpu ({platform.processor() or platform.machine()})"
        ),
        "threads": args.threads,
        "repeats": args.repeats,
        "load_average_before": os.getloadavg()[0],
        "torch": torch.__version__,
        "rows": rows,
    }
    print(json.dumps(result, indent=1))
    print(
        "\n| Euler steps | audio (s) | offline RTF | flow (s) | HiFT (s) | first-chunk latency (s) | streaming RTF |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['steps']} | {r['audio_s']:.2f} | {r['offline_rtf']:.2f} | {r['offline_flow_s']:.2f} | "
            f"{r['offline_hift_s']:.2f} | {r['first_chunk_latency_s']:.2f} | {r['stream_rtf']:.2f} |"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1), encoding="utf-8")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        steps = [r["steps"] for r in rows]
        ax.plot(steps, [r["offline_rtf"] for r in rows], "o-", label="offline RTF")
        ax.plot(steps, [r["stream_rtf"] for r in rows], "s-", label="streaming RTF")
        ax.plot(
            steps,
            [r["first_chunk_latency_s"] for r in rows],
            "^-",
            label="first-chunk latency (s)",
        )
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("Euler steps")
        ax.set_title(
            f"token2wav, CosyVoice-300M size, {result['device']}, {args.threads} threads",
            fontsize=8,
        )
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
