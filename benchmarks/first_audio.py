"""First audio of a streaming S2S reply against the time the whole reply takes.

``Speech2Response.stream`` at the small LLM size (``benchmarks.sizes``: 125.7 M parameters,
random weights, the released speech vocabulary K = 4096) with a token2wav of the real
CosyVoice-300M-25Hz dimensions (random weights, a 3 s speaker prompt as OSUM-EChat's),
greedy decoding with a budget of ``--speech_tokens`` speech tokens (random weights
practically never pick the end id among 4097, so the reply has that length; the JSON
records the length), 10 Euler steps, ``--threads`` torch threads.

Per repeat: the time from the call to the first waveform chunk (``first_audio_s``), to the
final chunk (``whole_reply_s``), their ratio, and the offline path for the same input
(``__call__``: decode, then synthesise the whole reply) as a check on the total work. The
configurations (``--first_hops``: the first chunk's hop in tokens, 50 is the reference's;
``--synthesis_nthreads``: the synthesiser's threads beside decoding, 0 = decoding pauses
while a chunk is synthesised) run interleaved, one of each per repeat, so a drift of a
shared machine hits them alike; the ratios between configurations are per repeat.

Run: ``python -m benchmarks.first_audio [--speech_tokens 250] [--repeats 3]
[--first_hops 10,50] [--synthesis_nthreads 0,1] [--threads 2]
[--out benchmarks/first_audio_cpu.json]``.
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from benchmarks.sizes import REPO, SIZES, build
from benchmarks.token2wav_rtf import CONF as T2W_CONF
from espnet2_echat.inference import Speech2Response
from espnet2_echat.models.token2wav.espnet_model import ESPnetToken2WavModel
from espnet2_echat.models.token2wav.speaker_prompt import SpeakerPrompt
from espnet2_echat.tasks.token2wav import Token2WavTask


def write_small_llm(out: Path) -> None:
    """config.yaml + model.pth of the small size (random weights)."""
    spec = SIZES["small"]
    model = build("small")
    conf = dict(
        frontend="whisper_logmel",
        frontend_conf={},
        encoder="whisper",
        encoder_conf=dict(spec["encoder_conf"], dropout_rate=0.0),
        speech_adapter="osum_echat",
        speech_adapter_conf=spec["speech_adapter_conf"],
        llm="hf_causal_lm",
        llm_conf=dict(
            name_or_path=str(REPO / "conf/llm/qwen2.5-3b"),
            dtype="float32",
            config_overrides=spec["llm_overrides"],
        ),
        tokenizer=str(REPO / "conf/tokenizer/qwen2.5"),
        speech_token_num=4097,
        trainable_parts="all",
        use_lora=False,
        gradient_checkpointing=False,
    )
    (out / "config.yaml").write_text(yaml.safe_dump(conf), encoding="utf-8")
    torch.save(model.state_dict(), out / "model.pth")


def write_token2wav(out: Path) -> None:
    """The real-size token2wav (random weights) with a stored 3 s speaker prompt."""
    torch.manual_seed(0)
    model_conf = yaml.safe_load(T2W_CONF.read_text(encoding="utf-8"))["model_conf"]
    model = ESPnetToken2WavModel(**model_conf).eval()
    model.store_prompt(
        SpeakerPrompt(
            torch.randint(0, 4096, (1, 75)),
            torch.randn(1, 258, 80) - 5.0,
            torch.randn(1, 192),
        )
    )
    model_conf.update(prompt_num_frames=258, prompt_num_tokens=75)
    (out / "config.yaml").write_text(
        yaml.safe_dump(Token2WavTask.default_config(model_conf)), encoding="utf-8"
    )
    torch.save(model.state_dict(), out / "model.pth")


def timed_stream(s2r: Speech2Response, speech: np.ndarray, decode: dict) -> dict:
    """Stream one reply; times of the first audio chunk and of the end."""
    t0 = time.perf_counter()
    first = None
    final = None
    for chunk in s2r.stream(speech=speech, task="s2s", **decode):
        if chunk.wav is not None and first is None:
            first = time.perf_counter() - t0
        if chunk.final is not None:
            final = chunk.final
    whole = time.perf_counter() - t0
    return {
        "first_audio_s": first,
        "whole_reply_s": whole,
        "ratio": first / whole,
        "speech_tokens": len(final.speech_token),
        "audio_s": len(final.wav) / final.sample_rate,
    }


def spread(values) -> dict:
    """Median, min and max."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--speech_tokens", type=int, default=250, help="reply length")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--first_hops", default="10,50", help="first chunk hops compared")
    parser.add_argument(
        "--synthesis_nthreads", default="0,1", help="synthesis threads beside decoding compared"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--matmul_dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--estimator_backend", default="torch", choices=["torch", "onnx"])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    hops = [int(h) for h in args.first_hops.split(",")]
    synth = [int(n) for n in args.synthesis_nthreads.split(",")]
    configs = [(h, n) for h in hops for n in synth]
    tmp = Path(tempfile.mkdtemp(prefix="first_audio_"))
    (tmp / "llm").mkdir()
    (tmp / "t2w").mkdir()
    write_small_llm(tmp / "llm")
    write_token2wav(tmp / "t2w")
    systems = {
        hop: Speech2Response(
            tmp / "llm" / "config.yaml",
            tmp / "llm" / "model.pth",
            token2wav_train_config=tmp / "t2w" / "config.yaml",
            token2wav_model_file=tmp / "t2w" / "model.pth",
            token2wav_matmul_dtype=args.matmul_dtype,
            token2wav_estimator=args.estimator_backend,
            token2wav_first_hop_len=hop,
        )
        for hop in hops
    }
    speech = (0.1 * np.random.default_rng(0).standard_normal(16000 * 3)).astype(np.float32)
    n = args.speech_tokens
    decode = dict(
        do_sample=False,
        max_new_tokens=20,
        max_new_speech_tokens=n,
        speech_ngram_blocking=False,
    )
    load_before = os.getloadavg()
    with torch.no_grad():
        timed_stream(systems[hops[0]], speech, dict(decode, max_new_speech_tokens=40))  # warm-up
        runs = {c: [] for c in configs}
        offline = []
        for _ in range(args.repeats):
            for hop, n in configs:
                runs[hop, n].append(
                    timed_stream(systems[hop], speech, dict(decode, synthesis_nthreads=n))
                )
            t0 = time.perf_counter()
            systems[hops[0]](speech=speech, task="s2s", **decode)
            offline.append(time.perf_counter() - t0)
    result = {
        "what": "Speech2Response.stream, S2S, small LLM (random), real-size token2wav (random)",
        "command": "python -m benchmarks.first_audio "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items() if k != "out"),
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "torch": torch.__version__,
        "load_average_before_after": [load_before[0], os.getloadavg()[0]],
        "offline_call_s": spread(offline),
        "by_config": {
            f"hop{hop}_synth{n}": {
                "first_hop": hop,
                "synthesis_nthreads": n,
                "speech_tokens": r[0]["speech_tokens"],
                "audio_s": r[0]["audio_s"],
                **{k: spread([x[k] for x in r]) for k in ("first_audio_s", "whole_reply_s", "ratio")},
                **{
                    f"{k}_vs_first_config": spread(
                        [x[k] / b[k] for x, b in zip(r, runs[configs[0]])]
                    )
                    for k in ("first_audio_s", "whole_reply_s")
                },
                "runs": r,
            }
            for (hop, n), r in runs.items()
        },
    }
    print(json.dumps(result, indent=1))
    f = lambda s: f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"
    print("\n| first hop | synthesis threads | first audio s | whole reply s | first / whole "
          "| first audio / first config | whole / first config |")
    print("|---|---|---|---|---|---|---|")
    for row in result["by_config"].values():
        print(
            f"| {row['first_hop']} | {row['synthesis_nthreads']} | {f(row['first_audio_s'])} | "
            f"{f(row['whole_reply_s'])} | {f(row['ratio'])} | "
            f"{f(row['first_audio_s_vs_first_config'])} | {f(row['whole_reply_s_vs_first_config'])} |"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
