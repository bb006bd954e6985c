"""Decode speed of the reference OSUM-EChat code vs ours, side by side (#17, items 6 and 8).

Same weights, same input, one run: a driver starts two long-lived worker processes pinned to
the same CPUs and thread count and alternates timed requests between them over pipes (JSON
lines), so only one decodes at a time and a drift of the machine's speed cancels in the
ratios, which are paired per repeat (median, min, max over repeats).

* reference: ``benchmarks/reference_worker.py``: the reference's own ``LLMASR_Model``
  (``init_model`` from its ``conf/ct_config.yaml`` at the ``--size`` dims, seeded random
  weights, float32), its own ``generate`` (ASR, text head) and ``generate_tts`` (speech head),
  greedy, eager, with the reference's pinned packages (transformers 4.44.0, tokenizers 0.19.1,
  peft, gxl_ai_utils, openai-whisper) installed apart in ``--reference_site`` and this
  venv's torch. Its run-time patches are listed in the output (``reference.patches``).
* ours: the reference's saved ``state_dict`` converted by ``espnet2_echat.convert.osum_echat``
  and decoded by ``espnet2_echat.inference.decoder.iter_generate`` on the CPU decode layout
  (``use_column_major_weights``): ``ours_fp32``, and ``ours_int8`` with int8 text and speech
  heads (``espnet2_echat.models.int8_heads``).

Input: 2.26 s of seeded noise at 16 kHz, ASR with the reference's instruction (prefill: the
understanding system prompt, instruction, audio, assistant start); speech tokens through TTS
of a fixed sentence (every step on the speech head and the speech table). Every decode is
forced to exactly ``--tokens`` ids: the eos id is banned for that many steps and decoding
stops after it. Per request: ``first_token_ms`` (waveform or text in to the first id out:
features, encoder, adapter, splice, the LLM prefill and its head), ``decode_ms_per_token``
(the mean time per step over ids 2..N) and ``total_ms``. ``agreement``: how many leading
greedy ids ours give equal to the reference's (fp32 vs fp32: equal up to near-ties of random
weights; int8 vs fp32 is expected to part earlier), and the max relative error of our
prefill embeddings vs the reference's.

    python -m benchmarks.reference_decode --reference_dir <OSUM checkout> --threads 2 \\
        --tokens 100 --repeats 5 --out benchmarks/reference_decode_cpu.json

``--reference_dir``: an ASLP-lab/OSUM checkout (a work tree with ``OSUM-EChat/``, or its bare
git directory, then ``OSUM-EChat/`` of HEAD is extracted into a cache folder). The reference's
packages (``SITE_PACKAGES``), once: ``make reference-site`` (into ``.reference_site``).
"""

import argparse
import copy
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ASR_INSTRUCTION = "将这段音频的语音内容详细记录为文字稿。"  # the reference's infer_runtime
TTS_TEXT = "今天天气很好，我们一起去公园散步吧。Let us take a walk in the park today."
SITE_PACKAGES = ("transformers==4.44.0 tokenizers==0.19.1 huggingface_hub==0.34.4 peft==0.17.0 "
                 "gxl-ai-utils==1.6.1 jsonlines==4.0.0 colorama openai-whisper")
VARIANTS = ("reference", "ours_fp32", "ours_int8")


class SetupError(RuntimeError):
    pass


# --------------------------------------------------------------------------- the reference
def _git_dir(path: Path):
    for candidate in (path / ".git", path):
        if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
            return candidate
    return None


def reference_code(reference_dir: str, cache: Path) -> tuple:
    """(the OSUM-EChat directory to run, its commit or None)."""
    root = Path(reference_dir).expanduser().resolve()
    git = _git_dir(root) if root.is_dir() else None
    commit = None
    if git is not None:
        r = subprocess.run(["git", "--git-dir", str(git), "rev-parse", "HEAD"],
                           capture_output=True, text=True)
        commit = r.stdout.strip() or None
    if (root / "OSUM-EChat" / "wenet").is_dir():
        return root / "OSUM-EChat", commit
    if git is None or commit is None:
        raise SetupError(
            f"--reference_dir {reference_dir}: no OSUM-EChat/ directory in it and not a git "
            "repository whose HEAD has one; give an ASLP-lab/OSUM checkout (work tree or its "
            "git directory)"
        )
    target = cache / commit[:12]
    if not (target / "OSUM-EChat" / "wenet").is_dir():
        stage = Path(tempfile.mkdtemp(prefix=".extract.", dir=cache))
        archive = subprocess.run(["git", "--git-dir", str(git), "archive", "HEAD", "OSUM-EChat"],
                                 capture_output=True)
        if archive.returncode != 0:
            shutil.rmtree(stage, ignore_errors=True)
            raise SetupError(
                f"--reference_dir {reference_dir}: HEAD ({commit[:12]}) has no OSUM-EChat/ "
                f"({archive.stderr.decode(errors='replace').strip()})"
            )
        subprocess.run(["tar", "-x", "-C", str(stage)], input=archive.stdout, check=True)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(stage, target)
    return target / "OSUM-EChat", commit


def check_site(site: Path) -> None:
    if not (site / "transformers-4.44.0.dist-info").is_dir():
        raise SetupError(
            f"the reference's packages are not in {site}; install them once with `make "
            f"reference-site`, or\n  {sys.executable} -m pip install --target {site} --no-deps "
            f"{SITE_PACKAGES}"
        )


def prepare(work: Path, osum: Path, size: str, seed: int) -> None:
    """LLM config + tokenizer, the reference config at ``size``, the waveform, the texts."""
    import numpy as np
    import yaml

    from benchmarks.sizes import SIZES

    spec = SIZES[size]
    if spec.get("llm_family", "qwen2") != "qwen2":
        raise SetupError(f"--size {size}: the reference builds Qwen2 LLMs only")
    llm = work / "llm"
    llm.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((REPO / "conf/llm/qwen2.5-3b/config.json").read_text())
    cfg.update(spec["llm_overrides"])
    cfg["max_window_layers"] = cfg["num_hidden_layers"]
    (llm / "config.json").write_text(json.dumps(cfg, indent=2))
    for f in (REPO / "conf/tokenizer/qwen2.5").iterdir():
        shutil.copy(f, llm / f.name)
    conf = yaml.safe_load((osum / "conf/ct_config.yaml").read_text(encoding="utf-8"))
    conf["llm_path"] = str(llm)
    conf["tokenizer_conf"]["llm_path"] = str(llm)
    conf["encoder_conf"].update(spec["encoder_conf"])
    (work / "config.yaml").write_text(yaml.safe_dump(conf, allow_unicode=True, sort_keys=False),
                                      encoding="utf-8")
    rng = np.random.default_rng(seed)
    np.save(work / "wav.npy", (rng.standard_normal(int(2.26 * 16000)) * 0.1).astype(np.float32))
    (work / "inputs.json").write_text(json.dumps(
        {"asr_instruction": ASR_INSTRUCTION, "tts_text": TTS_TEXT}, ensure_ascii=False))


# --------------------------------------------------------------------------- workers
class Worker:
    """A worker process answering one JSON line per JSON line."""

    def __init__(self, name, cmd, env, log: Path, cpus):
        self.name, self.log_path = name, log
        self.log = log.open("w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=env, text=True, cwd=str(REPO))
        if cpus and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(self.proc.pid, cpus)

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.log.flush()
            tail = self.log_path.read_text(errors="replace").splitlines()[-25:]
            raise RuntimeError(f"{self.name} worker exited (rc {self.proc.poll()}); the end of "
                               f"{self.log_path}:\n" + "\n".join(tail))
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.name} worker: {answer['error']} (log: {self.log_path})")
        return answer

    def ask(self, **request) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
        self.log.close()


def _thread_env(threads: int) -> dict:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[k] = str(threads)
    return env


def ours_worker(args) -> None:
    """The ``--worker ours`` process: converts WORK/model.pt and answers requests."""
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import torch

    torch.set_num_threads(args.threads)
    import numpy as np

    from espnet2_echat.convert.osum_echat import convert_osum_echat
    from espnet2_echat.data.layout import LayoutBuilder
    from espnet2_echat.inference.decoder import build_plan, iter_generate
    from espnet2_echat.inference.settings import DecodingOptions
    from espnet2_echat.models.int8_heads import use_int8_heads
    from espnet2_echat.tasks.echat import EChatTask

    work = Path(args.work_dir)
    t0 = time.perf_counter()
    convert_osum_echat(str(work / "model.pt"), str(work / "config.yaml"), str(work / "llm"),
                       str(work / "ours"))
    model, _ = EChatTask.build_model_from_file(work / "ours/config.yaml",
                                               work / "ours/model.pth")
    model.eval()
    build_s = time.perf_counter() - t0
    llms = {"ours_fp32": model.llm}
    model.llm.use_column_major_weights()  # ours: the CPU decode layout
    int8 = copy.deepcopy(model.llm)
    use_int8_heads(int8)
    llms["ours_int8"] = int8
    vocab = model.llm.ids.text_vocab_size
    inputs = json.loads((work / "inputs.json").read_text())
    builder = LayoutBuilder(str(work / "ours/llm"), reference_compat=True)
    prompts = {"asr": builder.prompt("text", instruction=inputs["asr_instruction"]),
               "tts": builder.prompt("text2token", text_input=inputs["tts_text"])}
    wav = torch.from_numpy(np.load(work / "wav.npy"))[None]
    wav_len = torch.tensor([wav.shape[1]])

    def plan(task, n):
        if task == "asr":
            return build_plan("text", DecodingOptions(do_sample=False, max_new_tokens=n,
                              max_new_speech_tokens=0, min_new_tokens=n), model.llm.ids)
        return build_plan("tts", DecodingOptions(do_sample=False, max_new_tokens=0,
                          max_new_speech_tokens=n, min_new_tokens=n), model.llm.ids,
                          stopping_criteria=[])

    _answer(out, {"ready": True, "build_s": build_s, "threads": torch.get_num_threads(),
                  "params": sum(p.numel() for p in model.parameters()),
                  "prefill_len": {k: len(v) for k, v in prompts.items()}})
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("quit"):
            break
        try:
            task, n, llm = req["task"], req["tokens"], llms[req["variant"]]
            p = plan(task, n)
            ids, times = [], []
            t0 = time.perf_counter()
            with torch.no_grad():
                prompt = torch.tensor(prompts[task])
                if task == "asr":
                    audio = model.audio_per_sample([prompt], wav, wav_len)
                else:
                    audio = [None]
                batch = model.build_inputs([prompt], audio)
                for step in iter_generate(llm, batch.inputs_embeds, batch.attention_mask,
                                          batch.position_ids, p):
                    times.append(time.perf_counter())
                    ids.append(int(step.ids[0]))
            end = time.perf_counter()
            answer = {"ids": [i - vocab if i >= vocab else i for i in ids],
                      "prefill_len": int(batch.inputs_embeds.shape[1]),
                      "first_token_ms": (times[0] - t0) * 1e3,
                      "decode_ms_per_token": (times[-1] - times[0]) * 1e3 / max(len(times) - 1, 1),
                      "total_ms": (end - t0) * 1e3}
            if req.get("compare_embeds"):
                ref = torch.from_numpy(np.load(req["compare_embeds"]))
                mine = batch.inputs_embeds[0].float()
                answer["embeds_max_rel_err"] = (
                    float((mine - ref).abs().max() / ref.abs().max())
                    if mine.shape == ref.shape
                    else f"shape {tuple(mine.shape)} vs {tuple(ref.shape)}"
                )
            _answer(out, answer)
        except Exception as e:  # noqa: BLE001 - reported to the driver
            import traceback

            traceback.print_exc()
            _answer(out, {"error": f"{type(e).__name__}: {e}"})
    out.close()


def _answer(out, obj) -> None:
    out.write(json.dumps(obj) + "\n")
    out.flush()


# --------------------------------------------------------------------------- driver
def _command(argv) -> str:
    """The command line as run, the checkout's path (this machine's) left as a placeholder."""
    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg == "--reference_dir" and i + 1 < len(argv):
            argv[i + 1] = "<OSUM checkout>"
        elif arg.startswith("--reference_dir="):
            argv[i] = "--reference_dir=<OSUM checkout>"
    return " ".join(["python", "-m", "benchmarks.reference_decode", *argv])


def _spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _leading_equal(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def run(args) -> dict:
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if "reference" not in variants or not set(variants) <= set(VARIANTS):
        raise SetupError(f"--variants: 'reference' and some of {VARIANTS}")
    if not set(tasks) <= {"asr", "tts"}:
        raise SetupError("--tasks: asr and/or tts")
    if args.tokens < 2:
        raise SetupError("--tokens: at least 2 (the decode time is over ids 2..N)")
    site = Path(args.reference_site).resolve()
    check_site(site)
    cache = Path(args.cache_dir).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    osum, commit = reference_code(args.reference_dir, cache)
    tmp = tempfile.TemporaryDirectory(prefix="reference_decode.")
    work = Path(args.work_dir) if args.work_dir else Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    prepare(work, osum, args.size, args.seed)
    cpus = None
    if hasattr(os, "sched_getaffinity"):  # both workers on the same CPUs
        cpus = sorted(os.sched_getaffinity(0))[: args.threads]

    ref_env = _thread_env(args.threads)
    ref_env["PYTHONPATH"] = os.pathsep.join([str(site), str(osum)])
    ref_env["PYTHONDONTWRITEBYTECODE"] = "1"  # nothing written into the reference checkout
    ours_env = _thread_env(args.threads)
    ours_env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
    res = {"size": args.size, "threads": args.threads, "cpus": cpus, "tokens": args.tokens,
           "repeats": args.repeats, "tasks": tasks, "variants": variants,
           "machine": platform.processor() or platform.machine(), "python": sys.version.split()[0],
           "command": _command(sys.argv[1:]),
           "input": {"wav_seconds": 2.26, "wav": "seeded N(0, 0.1^2) noise", "seed": args.seed,
                     "asr_instruction": ASR_INSTRUCTION, "tts_text": TTS_TEXT},
           "reference": {"commit": commit}, "load_before": os.getloadavg()}
    workers = {}
    try:
        t0 = time.perf_counter()
        ref = Worker("reference",
                     [sys.executable, str(REPO / "benchmarks/reference_worker.py"), "--osum_dir",
                      str(osum), "--work_dir", str(work), "--threads", str(args.threads),
                      "--seed", str(args.seed)], ref_env, work / "reference.log", cpus)
        workers["reference"] = ref
        ready = ref.read()
        res["reference"].update({k: ready[k] for k in ("patches", "versions", "params", "threads")})
        res["reference"]["build_s"] = time.perf_counter() - t0
        print(f"reference ready: {ready['params'] / 1e6:.1f} M params, "
              f"transformers {ready['versions']['transformers']}", flush=True)
        if any(v.startswith("ours") for v in variants):
            t0 = time.perf_counter()
            ours = Worker("ours", [sys.executable, "-m", "benchmarks.reference_decode", "--worker",
                                   "ours", "--work_dir", str(work), "--threads", str(args.threads)],
                          ours_env, work / "ours.log", cpus)
            workers["ours"] = ours
            ready = ours.read()
            res["ours"] = {"params": ready["params"], "threads": ready["threads"],
                           "build_s": time.perf_counter() - t0}
            print(f"ours ready: {ready['params'] / 1e6:.1f} M params", flush=True)

        def ask(variant, task, **extra):
            w = workers["reference" if variant == "reference" else "ours"]
            req = dict(task=task, tokens=args.tokens, **extra)
            if variant != "reference":
                req["variant"] = variant
            return w.ask(**req)

        # untimed first round: warm-up, the ids and the prefill embeddings compared
        res["agreement"] = {}
        for task in tasks:
            embeds = str(work / f"reference_{task}_embeds.npy")
            first = {"reference": ask("reference", task, save_embeds=embeds)}
            for v in variants[1:]:
                first[v] = ask(v, task, compare_embeds=embeds)
            agree = {"tokens": args.tokens,
                     "prefill_len": {v: a["prefill_len"] for v, a in first.items()},
                     "reference_ids_head": first["reference"]["ids"][:20]}
            for v in variants[1:]:
                agree[f"{v}_leading_ids_equal_reference"] = _leading_equal(
                    first["reference"]["ids"], first[v]["ids"])
                agree[f"{v}_ids_equal_reference"] = sum(
                    a == b for a, b in zip(first["reference"]["ids"], first[v]["ids"]))
                agree[f"{v}_embeds_max_rel_err"] = first[v].get("embeds_max_rel_err")
            res["agreement"][task] = agree
            print(task, "agreement", json.dumps({k: v for k, v in agree.items()
                                                 if k != "reference_ids_head"}), flush=True)

        times = {t: {v: {"first_token_ms": [], "decode_ms_per_token": [], "total_ms": []}
                     for v in variants} for t in tasks}
        for r in range(args.repeats):
            for task in tasks:
                # rotate the order every repeat: no variant always runs first or last
                order = variants[r % len(variants):] + variants[: r % len(variants)]
                for v in order:
                    a = ask(v, task)
                    for k in times[task][v]:
                        times[task][v][k].append(a[k])
            print(f"repeat {r + 1}/{args.repeats}: " + "; ".join(
                f"{t} " + " ".join(f"{v} {times[t][v]['decode_ms_per_token'][-1]:.1f}"
                                   for v in variants) + " ms/token" for t in tasks), flush=True)
        res["results"] = {}
        for task in tasks:
            tr = {"per_variant": {}, "paired_ratios": {}}
            for v in variants:
                tr["per_variant"][v] = {k: _spread(x) for k, x in times[task][v].items()}
                tr["per_variant"][v]["all"] = times[task][v]
            for v in variants[1:]:
                for k in ("decode_ms_per_token", "first_token_ms", "total_ms"):
                    ratios = [a / b for a, b in zip(times[task]["reference"][k], times[task][v][k])]
                    tr["paired_ratios"][f"reference_over_{v}_{k}"] = _spread(ratios)
            if "ours_fp32" in variants and "ours_int8" in variants:
                ratios = [a / b for a, b in zip(times[task]["ours_fp32"]["decode_ms_per_token"],
                                                times[task]["ours_int8"]["decode_ms_per_token"])]
                key = "ours_fp32_over_ours_int8_decode_ms_per_token"
                tr["paired_ratios"][key] = _spread(ratios)
            res["results"][task] = tr
    finally:
        for w in workers.values():
            w.close()
        if args.work_dir is None:
            tmp.cleanup()
    res["load_after"] = os.getloadavg()
    return res


def summary(res) -> str:
    lines = []
    for task, tr in res["results"].items():
        per = tr["per_variant"]
        cells = [f"{v} {per[v]['decode_ms_per_token']['median']:.1f}" for v in res["variants"]]
        lines.append(f"{task}: decode ms/token (median) " + ", ".join(cells))
        for name, s in tr["paired_ratios"].items():
            lines.append(f"  {name}: {s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference_dir", help="an ASLP-lab/OSUM checkout (work tree or git dir)")
    parser.add_argument("--size", default="small")
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tasks", default="asr,tts")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--reference_site", default=str(REPO / ".reference_site"),
                        help="where the reference's pinned packages are installed (--target)")
    parser.add_argument("--cache_dir", default=os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "echat_reference"),
        help="where OSUM-EChat/ is extracted from a git --reference_dir")
    parser.add_argument("--work_dir", default=None,
                        help="keep the weights, configs and worker logs here (default: a temp dir)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--worker", choices=["ours"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "ours":
        return ours_worker(args)
    if not args.reference_dir:
        parser.error("--reference_dir is required (an ASLP-lab/OSUM checkout)")
    try:
        res = run(args)
    except SetupError as e:
        sys.exit(f"reference_decode: {e}")
    print(summary(res))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
