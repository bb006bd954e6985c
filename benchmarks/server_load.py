"""Load on the HTTP server (``echat_server``): N concurrent clients vs one client at a time.

The server runs as its own process (``python -m espnet2_echat.bin.echat_server``, the way
users start it) on loopback; the clients are threads of this process. Every client loops
over a fixed mix of streamed requests (S2S, ASR, S2T chat with audio of the golden set; T2T
and TTS text; greedy decoding) and every answer is compared with the answer of the Python
API (``Speech2Response``, one request alone, eager) computed before the load starts: text,
CoT, text ids and speech ids must be equal.

The two modes alternate in ``--rounds`` rounds (one client, then N clients, ...), so a drift
of the machine's speed shows in the spread of the per-round ratios. Measured per mode:
answers per second, generated ids per second, time to the first streamed token (text, CoT
or speech ids) and, with a token2wav attached, to the first audio; p50 / p95.

    python -m benchmarks.server_load --clients 8 --duration_s 60 --rounds 3 \\
        --out benchmarks/server_load_cpu.json
"""

import argparse
import base64
import io
import json
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import httpx
import numpy as np
import soundfile as sf

MIX = [  # (task, utterance index or None, text, think)
    ("s2s", 0, None, "none"),
    ("asr", 1, None, "none"),
    ("t2t", None, "Hello there, how are you?", "none"),
    ("s2t_chat", 2, None, "none"),
    ("tts", None, "Good morning.", "none"),
    ("s2s", 1, None, "tag"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wav_b64(wav: np.ndarray) -> str:
    buf = io.BytesIO()
    sf.write(buf, wav, 16000, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode()


def _percentile(values: List[float], q: float) -> Optional[float]:
    return float(np.percentile(values, q)) if values else None


def build_requests(s2r, fixtures: Path, max_tokens: int, max_speech_tokens: int) -> List[Dict]:
    """The request bodies and the eager single-request answer of each."""
    import json as _json

    with open(fixtures / "expected.json", encoding="utf-8") as f:
        utts = _json.load(f)["utterances"]
    wavs = []
    for utt in utts:
        pcm, fs = sf.read(fixtures / utt["wav"], dtype="int16")
        wavs.append(pcm.astype(np.float32) / 32768)
    greedy = dict(do_sample=False, max_new_tokens=max_tokens, max_new_speech_tokens=max_speech_tokens)
    out = []
    for task, utt, text, think in MIX:
        wav = wavs[utt % len(wavs)] if utt is not None else None
        want = s2r(speech=wav, text=text, task=task, think=think, **greedy)
        content = []
        if wav is not None:
            content.append({"type": "input_audio", "input_audio": {"data": _wav_b64(wav), "format": "wav"}})
        if text is not None:
            content.append({"type": "text", "text": text})
        body = {"messages": [{"role": "user", "content": content}], "task": task, "think": think,
                "stream": True, "temperature": 0, "max_tokens": max_tokens,
                "max_speech_tokens": max_speech_tokens}
        expected = {"text": want.text, "think": want.think, "token_int": want.token_int,
                    "speech_token": want.speech_token}
        out.append({"name": f"{task}/{think}/{utt if utt is not None else text}", "body": body,
                    "expected": expected})
    return out


def one_request(client: httpx.Client, url: str, req: Dict) -> Dict:
    """Send one streamed request; latencies and whether the answer equals the expected one."""
    start = time.perf_counter()
    first_token = first_audio = None
    final, error, streamed = None, None, []
    with client.stream("POST", f"{url}/v1/chat/completions", json=req["body"]) as resp:
        if resp.status_code != 200:
            resp.read()
            return {"status": resp.status_code, "error": resp.text[:300]}
        for line in resp.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                error = chunk["error"]
                continue
            delta = chunk["choices"][0]["delta"]
            now = time.perf_counter() - start
            if first_token is None and (delta.get("content") or delta.get("reasoning_content")
                                        or delta.get("speech_token")):
                first_token = now
            if first_audio is None and delta.get("audio"):
                first_audio = now
            streamed += delta.get("speech_token", [])
            if chunk["choices"][0]["finish_reason"] == "stop":
                final = chunk["echat"]
    total = time.perf_counter() - start
    got = {k: final.get(k) for k in req["expected"]} if final else None
    correct = got == req["expected"] and streamed == req["expected"]["speech_token"]
    return {"status": 200, "error": error, "correct": correct, "total_s": total,
            "first_token_s": first_token, "first_audio_s": first_audio,
            "ids": len(req["expected"]["token_int"]) + len(req["expected"]["speech_token"]),
            "name": req["name"]}


def run_mode(url: str, requests: List[Dict], clients: int, duration_s: float, auth) -> Dict:
    """``clients`` threads loop over ``requests`` (each from its own offset) for ``duration_s``."""
    results: List[Dict] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + duration_s

    def client_loop(k: int):
        with httpx.Client(timeout=300, auth=auth) as client:
            i = k
            while time.perf_counter() < stop_at:
                try:
                    r = one_request(client, url, requests[i % len(requests)])
                except httpx.HTTPError as e:
                    r = {"status": None, "error": repr(e)}
                with lock:
                    results.append(r)
                i += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    done = [r for r in results if r.get("status") == 200 and not r.get("error")]
    first = [r["first_token_s"] for r in done if r["first_token_s"] is not None]
    audio = [r["first_audio_s"] for r in done if r["first_audio_s"] is not None]
    totals = [r["total_s"] for r in done]
    return {
        "clients": clients,
        "wall_s": wall,
        "answers": len(done),
        "correct": sum(r["correct"] for r in done),
        "wrong": [r["name"] for r in done if not r["correct"]][:20],
        "busy_503": sum(r.get("status") == 503 for r in results),
        "errors": [r.get("error") for r in results if r.get("status") != 200 or r.get("error")][:10],
        "answers_per_s": len(done) / wall,
        "ids_per_s": sum(r["ids"] for r in done) / wall,
        "first_token_p50_s": _percentile(first, 50),
        "first_token_p95_s": _percentile(first, 95),
        "first_audio_p50_s": _percentile(audio, 50),
        "first_audio_p95_s": _percentile(audio, 95),
        "total_p50_s": _percentile(totals, 50),
        "total_p95_s": _percentile(totals, 95),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", help="config.yaml + model.pth (default: the golden set's "
                        "tiny checkpoint, converted into a temporary folder)")
    parser.add_argument("--fixtures", default=os.environ.get("ECHAT_REF_FIXTURES", "../shared/fixtures"))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration_s", type=float, default=60.0, help="per mode, all rounds together")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max_tokens", type=int, default=20)
    parser.add_argument("--max_speech_tokens", type=int, default=40)
    parser.add_argument("--nthreads", type=int, default=1, help="the server's torch threads")
    parser.add_argument("--token2wav_train_config")
    parser.add_argument("--token2wav_model_file")
    parser.add_argument("--out")
    args = parser.parse_args()
    fixtures = Path(args.fixtures) / "osum_echat_tiny"

    import torch

    torch.set_num_threads(1)  # the clients' process: leave the cores to the server
    from espnet2_echat.inference import Speech2Response

    tmp = tempfile.TemporaryDirectory()
    model_dir = Path(args.model_dir) if args.model_dir else Path(tmp.name) / "tiny"
    if not args.model_dir:
        from espnet2_echat.convert.osum_echat import convert_osum_echat

        convert_osum_echat(str(fixtures / "model.pt"), str(fixtures / "config.yaml"),
                           str(fixtures / "llm"), str(model_dir))
    s2r = Speech2Response(model_dir / "config.yaml", model_dir / "model.pth")
    requests = build_requests(s2r, fixtures, args.max_tokens, args.max_speech_tokens)
    del s2r

    port = _free_port()
    auth = ("load", "test")
    auth_file = Path(tmp.name) / "auth"
    auth_file.write_text("load:test\n")
    cmd = [sys.executable, "-m", "espnet2_echat.bin.echat_server", "--train_config",
           str(model_dir / "config.yaml"), "--model_file", str(model_dir / "model.pth"),
           "--port", str(port), "--nthreads", str(args.nthreads), "--device", "cpu",
           "--max_concurrent", str(args.clients), "--max_queued", str(args.clients),
           "--auth_file", str(auth_file), "--log_level", "warning"]
    if args.token2wav_train_config:
        cmd += ["--token2wav_train_config", args.token2wav_train_config,
                "--token2wav_model_file", args.token2wav_model_file]
    server = subprocess.Popen(cmd)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the server did not start: {shlex.join(cmd)}")
            time.sleep(0.5)
        run_mode(url, requests, 1, 3.0, auth)  # warm-up
        per_round = args.duration_s / args.rounds
        rounds = []
        for _ in range(args.rounds):
            single = run_mode(url, requests, 1, per_round, auth)
            many = run_mode(url, requests, args.clients, per_round, auth)
            rounds.append({"single": single, "concurrent": many})
        health = httpx.get(f"{url}/health", timeout=5).json()
    finally:
        server.terminate()
        server.wait(timeout=60)
        tmp.cleanup()

    def ratio(key):
        values = [r["concurrent"][key] / r["single"][key] for r in rounds
                  if r["single"][key] and r["concurrent"][key]]
        return {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else None

    def total(mode, key):
        return sum(r[mode][key] for r in rounds)

    res = {
        "command": shlex.join([sys.executable, "-m", "benchmarks.server_load"] + sys.argv[1:]),
        "server_command": shlex.join(cmd[:3]) + " ...",
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "server_nthreads": args.nthreads,
        "clients": args.clients,
        "duration_s_per_mode": args.duration_s,
        "rounds": args.rounds,
        "max_tokens": args.max_tokens,
        "max_speech_tokens": args.max_speech_tokens,
        "requests": [r["name"] for r in requests],
        "answers": {m: total(m, "answers") for m in ("single", "concurrent")},
        "correct": {m: total(m, "correct") for m in ("single", "concurrent")},
        "busy_503": {m: total(m, "busy_503") for m in ("single", "concurrent")},
        "concurrent_vs_single": {k: ratio(k) for k in (
            "answers_per_s", "ids_per_s", "first_token_p50_s", "first_token_p95_s", "total_p50_s")},
        "server_peak_batch": health.get("peak_batch"),
        "rounds_detail": rounds,
    }
    print(json.dumps({k: v for k, v in res.items() if k != "rounds_detail"}, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
