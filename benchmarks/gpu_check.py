"""A short check of the accelerator paths, for a machine with CUDA GPUs (or Ascend NPUs).

Run from the repository root: ``python -m benchmarks.gpu_check --out gpu_check.json``
(about 5-10 minutes on one H100). Every part runs in its own process with a time limit, and
the JSON records each part's outcome, so one failure does not hide the others:

1. ``train_tiny`` / ``train_full``: bf16 (``--use_amp true``) training steps of the tiny and
   the full-size model (random weights from ``conf/llm/qwen2.5-3b``, Whisper-medium geometry,
   the full stage-1 config: encoder and adapter trained, LLM frozen) at a small batch,
   through ``echat_train --ngpu 1``; reports the seconds per step and the peak memory.
2. ``ddp``: the tiny model with DDP over every device present (``espnet2.bin.launch --ngpu N``);
   skipped with a line when there is one device.
3. ``decode``: greedy decoding speed of the tiny model trained in 1 (tokens per second).
4. ``token2wav``: ``benchmarks/token2wav_rtf.py --device <accelerator>`` (real CosyVoice size).

The device comes from ``espnet2_echat.train.devices`` like everywhere else.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--max_epoch", "1", "--num_iters_per_epoch", "6", "--batch_tokens", "2000",
         "--use_tensorboard", "false", "--use_amp", "true", "--num_workers", "0"]


def run(cmd: List[str], timeout: int, log: Path) -> Dict:
    """Run a command with a time limit; return its status, time and log tail."""
    start = time.time()
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{REPO}/egs2/echat/echat1/utils:"
           + os.environ.get("PATH", "")}
    with open(log, "w") as f:
        try:
            rc = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT,
                                timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    text = log.read_text(errors="replace")
    return {"rc": rc, "seconds": round(time.time() - start, 1), "log": str(log),
            "tail": text[-1500:] if rc != 0 else ""}


def step_time(exp: Path) -> Dict:
    """Seconds per step and peak GPU memory from ESPnet's epoch summary in train.log."""
    log = (exp / "train.log").read_text(errors="replace") if (exp / "train.log").exists() else ""
    out = {}
    for key in ("train_time", "gpu_max_cached_mem_GB"):
        m = re.findall(rf"{key}=([0-9.e+-]+)", log)
        if m:
            out[key] = float(m[-1])
    return out


def train(size: str, corpus: Dict[str, Path], work: Path, ngpu: int = 1) -> Dict:
    """bf16 training steps of one model size."""
    exp = work / f"train_{size}_ngpu{ngpu}"
    if size == "tiny":
        config = ["--config", "conf/train_stage1_understanding.yaml"]
    else:  # random 3B weights from the local config: no download
        config = ["--config", "conf/full/train_stage1_understanding.yaml",
                  "--llm_conf", "name_or_path=conf/llm/qwen2.5-3b", "--llm_conf", "pretrained=false"]
    data = ["--train_data_dir", str(corpus["train_asr"]), "--valid_data_dir", str(corpus["valid_asr"])]
    cmd = [sys.executable, "-m", "espnet2.bin.launch", "--cmd", "run.pl", "--log",
           str(exp / "train.log"), "--ngpu", str(ngpu), "--multiprocessing_distributed", "true",
           "--", sys.executable, "-m", "espnet2_echat.bin.echat_train", *config, *data, *SMALL,
           "--require_init_param", "false", "--output_dir", str(exp)]
    result = run(cmd, 900, work / f"{exp.name}.launch.log")
    result.update(step_time(exp))
    result["exp"] = str(exp)
    return result


def decode(exp: Path, device: str, work: Path) -> Dict:
    """Greedy decoding speed of a trained tiny model (tokens per second, batch 1)."""
    code = f"""
import json, time, numpy as np, torch
from espnet2_echat.inference import Speech2Response
s2r = Speech2Response({str(exp / 'config.yaml')!r}, {str(exp / 'valid.loss.ave.pth')!r}, device={device!r})
wav = np.random.RandomState(0).randn(16000 * 3).astype('float32') * 0.1
s2r(wav, task='asr', max_new_tokens=8)  # warm-up
n, t = 0, 0.0
for _ in range(3):
    start = time.time(); r = s2r(wav, task='asr', max_new_tokens=200)
    if torch.cuda.is_available(): torch.cuda.synchronize()
    t += time.time() - start; n += len(r.token_int)
print(json.dumps({{'tokens': n, 'seconds': t, 'tokens_per_s': n / t}}))
"""
    log = work / "decode.log"
    result = run([sys.executable, "-c", code], 600, log)
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith("{")]
    if lines:
        result.update(json.loads(lines[-1]))
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="gpu_check.json")
    parser.add_argument("--work_dir", default=None, help="default: a temporary dir")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["train_tiny", "train_full", "ddp", "decode", "token2wav"])
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    import torch

    from espnet2_echat.train.devices import device_kind, resolve_device, supports_bf16
    from tests.train.corpus import make_corpus

    kind = device_kind()
    count = torch.cuda.device_count() if kind == "cuda" else (
        torch.npu.device_count() if kind == "npu" else 0)
    report: Dict = {"device_kind": kind, "devices": count, "bf16": supports_bf16(),
                    "torch": torch.__version__}
    if kind == "cpu":
        report["error"] = "no CUDA GPU or Ascend NPU: nothing to check"
        Path(args.out).write_text(json.dumps(report, indent=2))
        print(json.dumps(report, indent=2))
        return 1
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = make_corpus(work / "corpus", num_per_phrase=4)
    if "train_tiny" not in args.skip:
        report["train_tiny"] = train("tiny", corpus, work)
    if "train_full" not in args.skip:
        report["train_full"] = train("full", corpus, work)
    if "ddp" not in args.skip:
        report["ddp"] = (train("tiny", corpus, work, ngpu=count) if count > 1
                         else {"skipped": f"{count} device: DDP needs two"})
    tiny = work / "train_tiny_ngpu1"
    if "decode" not in args.skip and (tiny / "valid.loss.ave.pth").exists():
        report["decode"] = decode(tiny, resolve_device("auto"), work)
    if "token2wav" not in args.skip:
        out = work / "token2wav_rtf.json"
        report["token2wav"] = run([sys.executable, "benchmarks/token2wav_rtf.py", "--device",
                                   resolve_device("auto"), "--repeats", "2", "--out", str(out)],
                                  600, work / "token2wav.log")
        if out.exists():
            report["token2wav"]["result"] = json.loads(out.read_text())
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    parts = [v for v in report.values() if isinstance(v, dict) and "rc" in v]
    return 0 if all(p["rc"] == 0 for p in parts) else 1


if __name__ == "__main__":
    sys.exit(main())
