"""Load on the web demo: N concurrent clients on loopback for a fixed time.

Every client loops over a fixed set of requests (T2T text and ASR audio uploads, greedy
decoding) through gradio's HTTP API (``gradio_client``) and compares each answer with the
one the Python API gave for the same input before the server started. The server runs in
this process and the clients in another, so the resident memory sampled every second is
the server's alone. A "busy" answer is counted
separately (with the default limits and N <= max_concurrent + max_queued there is none).

    python benchmarks/web_demo_load.py --model_dir exp/converted_tiny --clients 8 \\
        --duration_s 60 --out benchmarks/web_demo_load_cpu.json
    (--no_heap_trim: the baseline without the server's native-heap trimming)
"""

import argparse
import json
import multiprocessing
import os
import platform
import resource
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

DECODING = dict(do_sample=False, max_new_tokens=8, max_new_speech_tokens=8)
TEXTS = ["Hello there.", "How are you today?", "Tell me a joke."]


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _requests(s2r, wav_dir: Path) -> List[Dict]:
    """The request set and each one's expected reply (the Python API, same options)."""
    reqs = []
    for text in TEXTS:
        reqs.append(dict(kind="text", task="t2t", text=text,
                         expected=s2r(text=text, task="t2t", **DECODING).text))
    rng = np.random.default_rng(0)
    for i in range(2):
        wav = (0.1 * np.sin(np.arange(16000 * (i + 1)) * (0.05 + 0.02 * i))
               + 0.01 * rng.standard_normal(16000 * (i + 1))).astype(np.float32)
        path = wav_dir / f"q{i}.wav"
        sf.write(path, wav, 16000, subtype="PCM_16")
        pcm, _ = sf.read(path, dtype="int16")  # what the demo receives
        expected = s2r(speech=pcm, fs=16000, task="asr", **DECODING).text
        reqs.append(dict(kind="audio", task="asr", path=str(path), expected=expected))
    return reqs


def _clients(url: str, reqs: List[Dict], clients: int, duration_s: float, results) -> None:
    """``clients`` threads, each asking in a loop until ``duration_s`` has passed; puts
    (counts, latencies of correct answers, examples of wrong ones) on ``results``."""
    from gradio_client import Client, handle_file

    stop = threading.Event()
    latencies: List[float] = []
    counts = dict(ok=0, wrong=0, busy=0, error=0)
    wrong_examples: List[str] = []
    lock = threading.Lock()

    def client_loop(k: int):
        client = Client(url, verbose=False, download_files=False)
        i = k
        while not stop.is_set():
            req = reqs[i % len(reqs)]
            i += 1
            audio = handle_file(req["path"]) if req["kind"] == "audio" else None
            t0 = time.monotonic()
            try:
                chat, *_ = client.predict(
                    audio, req.get("text", ""), req["task"], "none", [], api_name="/on_send"
                )
                answer = chat[-1]["content"]
                if isinstance(answer, list):  # gradio 5+: a list of message parts
                    answer = "".join(part.get("text", "") for part in answer)
                answer = "" if answer == "(no text)" else answer
                status = "ok" if answer == req["expected"] else "wrong"
            except Exception as e:  # gradio_client raises AppError for gr.Error
                status = "busy" if "busy" in str(e) else "error"
                answer = str(e)
            with lock:
                counts[status] += 1
                if status == "ok":
                    latencies.append(time.monotonic() - t0)
                elif len(wrong_examples) < 5:
                    wrong_examples.append(f"{req['task']}: {answer!r} vs {req['expected']!r}")

    threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    time.sleep(duration_s)
    stop.set()
    for t in threads:
        t.join(120)
    results.put((counts, latencies, wrong_examples))


def slope_mb_per_s(rss: List[float]) -> float:
    """Least-squares slope of the once-a-second RSS samples over their last half (MB/s)."""
    half = np.asarray(rss[len(rss) // 2 :], dtype=float)
    if len(half) < 2:
        return float("nan")
    return float(np.polyfit(np.arange(len(half)), half, 1)[0])


def run_load(model_dir: str, clients: int = 8, duration_s: float = 60.0,
             heap_trim: bool = True) -> Dict:
    """Serve the demo, run ``clients`` loops for ``duration_s``; return the figures.
    ``heap_trim=False`` switches the server's native-heap trimming off (the baseline)."""
    from espnet2_echat.inference import Speech2Response
    from espnet2_echat.inference.request_limits import RequestLimits
    from espnet2_echat.inference.web_demo import build_demo

    s2r = Speech2Response.from_pretrained(model_dir)
    tmp = Path(tempfile.mkdtemp(prefix="echat_load_"))
    reqs = _requests(s2r, tmp)
    limits = RequestLimits()
    demo = build_demo(s2r, default_task="t2t", limits=limits, **DECODING)
    if not heap_trim:
        demo.heap_trimmer._trim = None
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                max_file_size=limits.max_upload_bytes)
    url = f"http://127.0.0.1:{port}/"
    rss: List[float] = [_rss_mb()]
    stop = threading.Event()

    def sample_memory():
        while not stop.wait(1.0):
            rss.append(_rss_mb())

    memory = threading.Thread(target=sample_memory, daemon=True)
    memory.start()
    # the clients run in another process: the memory figures are the server's alone
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_clients, args=(url, reqs, clients, duration_s, results))
    t_start = time.monotonic()
    cpu_start = time.process_time()
    proc.start()
    counts, latencies, wrong_examples = results.get(timeout=duration_s + 600)
    proc.join(60)
    elapsed = time.monotonic() - t_start
    server_cpu = time.process_time() - cpu_start
    clients_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    stop.set()
    demo.close()
    warm = rss[len(rss) // 4 :] or rss
    lat = sorted(latencies)
    return {
        "clients": clients,
        "duration_s": round(elapsed, 1),
        "answers": counts,
        "answers_per_s": round(counts["ok"] / elapsed, 2),
        "latency_s": {
            "median": round(statistics.median(lat), 3) if lat else None,
            "p90": round(lat[int(0.9 * (len(lat) - 1))], 3) if lat else None,
            "max": round(lat[-1], 3) if lat else None,
        },
        "rss_mb": {
            "before": round(rss[0], 1),
            "peak": round(max(rss), 1),
            "last_quarter_to_end_growth": round(rss[-1] - warm[0], 1),
            "end": round(rss[-1], 1),
            "every_5_s": [round(x, 1) for x in rss[::5]],
            "every_1_s": [round(x, 1) for x in rss],
            "slope_last_half_mb_per_s": round(slope_mb_per_s(rss), 3),
        },
        "heap_trim": heap_trim,
        "heap_trims": demo.heap_trimmer.trims,
        "wall_s": round(elapsed, 1),
        "cpu_s": {"server": round(server_cpu, 1),
                  "clients": round(clients_cpu.ru_utime + clients_cpu.ru_stime, 1)},
        "admission_peak": demo.admission_queue.peak,
        "limits": {k: getattr(limits, k) for k in ("max_concurrent", "max_queued", "max_audio_seconds")},
        "wrong_examples": wrong_examples,
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="config.yaml + model.pth (e.g. a converted model)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration_s", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no_heap_trim", action="store_true",
                        help="baseline: the server does not trim its native heap")
    args = parser.parse_args()
    result = run_load(args.model_dir, args.clients, args.duration_s, not args.no_heap_trim)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
