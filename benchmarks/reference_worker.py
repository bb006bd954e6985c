"""The reference OSUM-EChat side of ``benchmarks/reference_decode.py`` (a worker process).

Run by the driver, never by hand: ``python benchmarks/reference_worker.py --osum_dir DIR
--work_dir DIR --threads N``, with the reference's own pinned packages (transformers 4.44.0,
tokenizers 0.19.1, peft, gxl_ai_utils, openai-whisper) first on ``PYTHONPATH`` and this
venv's torch. It imports nothing from ``espnet2_echat`` (that needs transformers 5).

It builds the reference ``LLMASR_Model`` with the reference's own ``init_model`` from
``WORK/config.yaml`` (seeded random weights), saves its ``state_dict`` to ``WORK/model.pt``
for the other side to convert, and then answers JSON requests, one per line on stdin, with
one JSON line each on the stdout it was started with (the reference prints freely, so its
prints are sent to stderr). Requests: ``{"task": "asr"|"tts", "tokens": N}`` decodes through
the reference's own ``generate`` (ASR) or ``generate_tts`` (speech tokens) and returns the
generated ids and the times; ``{"quit": true}`` ends it.

What runs differently from the reference's runtime is listed in ``PATCHES`` below and sent
with the first answer; these are the choices the harness of the tiny golden set made (its
``patches_and_deviations``), except that the features come from a waveform, not a wav file.
``--state_dict`` loads given weights in place of the random ones: with the golden set's
``model.pt``, config and utt1 this worker gives its greedy ASR (20) and TTS (30) ids exactly.
"""

import argparse
import ast
import inspect
import json
import os
import sys
import textwrap
import time
import types

PATCHES = [
    "patches/modelling_qwen2_infer_gpu.py: _GPU_QWEN_TORCH_COMPILE = False before the model is "
    "built: decode steps run the same simplify_forward eagerly instead of "
    "torch.compile(fullgraph=True) of it (the performance anchors' reference figures are eager).",
    "float32: the model is cast to float32 after init_model (the reference builds the LLM in "
    "bfloat16 and casts everything to bfloat16 for inference); "
    "LLMASR_Model.do_add_speech_embed_head is done by the same two attribute assignments "
    "without its .to(torch.bfloat16); the Qwen2 RoPE cos/sin tables (built in bfloat16 under "
    "torch_dtype=bfloat16) are recomputed in float32 by the module's own _set_cos_sin_cache.",
    "features: common_utils/utils4infer.py::get_feat_from_wav_path, its own source, taking the "
    "16 kHz waveform in place of do_resample(torchaudio.load(path)) and without the final "
    "feat.to(torch.bfloat16); computed inside the timed prefill (infer_runtime calls it right "
    "before generate).",
    "generate_tts: a copy of LLMASR_Model.generate_tts whose source differs only by dropping "
    "the .to(torch.bfloat16) on its prefill embeddings (a no-op in the all-bf16 runtime).",
    "decoding: a wrapper around llama_model.generate keeps every argument the reference "
    "passes (inputs_embeds, max_new_tokens=8000 and so the 8000+prompt static KV cache, "
    "cache_implementation='static', eos_token_id, min_length, logits processors, "
    "do_compile=True) except: do_sample=False (greedy), top_k/top_p/temperature dropped, "
    "repetition_penalty=1.0; it adds min_new_tokens=N (transformers' "
    "MinNewTokensLengthLogitsProcessor bans the eos id for N steps) and a stopping criterion "
    "that stops after N generated ids and records the time of every step.",
]


def _function_source(path: str, name: str) -> str:
    """Source of the top-level function ``name`` in the file ``path`` (not imported: the
    module's other imports, e.g. cn2an, are not needed for it)."""
    src = open(path, encoding="utf-8").read()
    for node in ast.parse(src).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(src, node)
    raise RuntimeError(f"{path} has no function {name}")


def _edited(source: str, edits) -> str:
    for old, new in edits:
        if source.count(old) != 1:
            raise RuntimeError(
                f"the reference source changed: {old!r} occurs {source.count(old)} times"
            )
        source = source.replace(old, new)
    return source


def _answer(out, obj) -> None:
    out.write(json.dumps(obj) + "\n")
    out.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--osum_dir", required=True, help="the extracted OSUM-EChat directory")
    parser.add_argument("--work_dir", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--state_dict", default=None,
                        help="load these weights (e.g. the tiny golden set's model.pt, to check "
                        "this worker reproduces its ids) in place of the random ones")
    args = parser.parse_args()

    # protocol on the original stdout; everything the reference prints goes to stderr
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    import numpy as np
    import torch
    import yaml

    torch.set_num_threads(args.threads)
    osum = os.path.abspath(args.osum_dir)
    work = os.path.abspath(args.work_dir)
    sys.path.insert(0, osum)
    os.chdir(osum)

    import transformers
    import patches.modelling_qwen2_infer_gpu as qwen_patch

    qwen_patch._GPU_QWEN_TORCH_COMPILE = False
    from transformers import StoppingCriteria, StoppingCriteriaList
    from wenet.osum_echat import llmasr_model_instruct_version as llmasr
    from wenet.utils.init_model import init_model

    with open(os.path.join(work, "config.yaml"), encoding="utf-8") as f:
        configs = yaml.safe_load(f)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    model, configs = init_model(types.SimpleNamespace(checkpoint=None, enc_init=None), configs)
    model = model.float().eval()
    if args.state_dict:
        model.load_state_dict(torch.load(args.state_dict, map_location="cpu"))
    for layer in model.llama_model.model.layers:
        rope = layer.self_attn.rotary_emb
        rope._set_cos_sin_cache(rope.max_seq_len_cached, rope.inv_freq.device, torch.float32)
    # saved before the speech table/head become submodules of llama_model (the released
    # checkpoints' key layout)
    torch.save(model.state_dict(), os.path.join(work, "model.pt"))
    build_s = time.perf_counter() - t0
    model.llama_model.speech_token_emded = model.speech_token_emded
    model.llama_model.speech_head = model.speech_head
    model.add_embed_head = False

    # generate_tts without its bf16 cast of the prefill
    tts_src = _edited(
        textwrap.dedent(inspect.getsource(llmasr.LLMASR_Model.generate_tts)),
        [("dim=1).to(torch.bfloat16)", "dim=1)")],
    )
    namespace = dict(vars(llmasr))
    exec(compile(tts_src, llmasr.__file__, "exec"), namespace)
    model.generate_tts = types.MethodType(namespace["generate_tts"], model)

    # the reference's log-mel features, from a waveform
    feat_src = _edited(
        _function_source(os.path.join(osum, "common_utils/utils4infer.py"),
                         "get_feat_from_wav_path"),
        [("    feat = feat.to(torch.bfloat16)\n", "")],
    )
    import librosa

    state = {}
    feat_ns = dict(torch=torch, librosa=librosa, do_resample=lambda _: (state["wav"], 16000))
    exec(compile(feat_src, "utils4infer.py", "exec"), feat_ns)
    get_feat = feat_ns["get_feat_from_wav_path"]

    class Timed(StoppingCriteria):
        """Stops after ``n`` generated ids; records the time of each step."""

        def __init__(self, n):
            self.n, self.times = n, []

        def __call__(self, input_ids, scores, **kwargs):
            self.times.append(time.perf_counter())
            done = input_ids.shape[1] >= self.n
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool)

    original_generate = model.llama_model.generate

    def greedy_generate(**kw):
        kw["do_sample"] = False
        for k in ("top_k", "top_p", "temperature"):
            kw.pop(k, None)
        kw["repetition_penalty"] = 1.0
        kw["min_new_tokens"] = state["n"]
        criteria = StoppingCriteriaList(list(kw.get("stopping_criteria") or []))
        criteria.append(state["timer"])
        kw["stopping_criteria"] = criteria
        state["prefill_len"] = int(kw["inputs_embeds"].shape[1])
        if state.get("save_embeds"):
            np.save(state["save_embeds"], kw["inputs_embeds"][0].detach().float().numpy())
        out = original_generate(**kw)
        state["ids"] = out[0].tolist()
        return out

    model.llama_model.generate = greedy_generate
    wav = torch.from_numpy(np.load(os.path.join(work, "wav.npy")))
    with open(os.path.join(work, "inputs.json"), encoding="utf-8") as f:
        inputs = json.load(f)
    n_params = sum(p.numel() for p in model.parameters())
    _answer(out, {"ready": True, "build_s": build_s, "params": n_params, "patches": PATCHES,
                  "versions": {"torch": torch.__version__,
                               "transformers": transformers.__version__},
                  "threads": torch.get_num_threads()})

    for line in sys.stdin:
        req = json.loads(line)
        if req.get("quit"):
            break
        try:
            state.update(n=req["tokens"], timer=Timed(req["tokens"]), wav=wav,
                         save_embeds=req.get("save_embeds"))
            t0 = time.perf_counter()
            if req["task"] == "asr":
                feat, feat_lens = get_feat("<waveform>", torch.device("cpu"))
                model.generate(wavs=feat, wavs_len=feat_lens, prompt=inputs["asr_instruction"])
            elif req["task"] == "tts":
                model.generate_tts(torch.device("cpu"), inputs["tts_text"])
            else:
                raise ValueError(f"unknown task {req['task']!r}")
            end = time.perf_counter()
            times = state["timer"].times
            _answer(out, {"ids": state["ids"], "prefill_len": state["prefill_len"],
                          "first_token_ms": (times[0] - t0) * 1e3,
                          "decode_ms_per_token": (times[-1] - times[0]) * 1e3
                          / max(len(times) - 1, 1),
                          "total_ms": (end - t0) * 1e3})
        except Exception as e:  # noqa: BLE001 - reported to the driver, which stops
            import traceback

            traceback.print_exc()
            _answer(out, {"error": f"{type(e).__name__}: {e}"})
    out.close()


if __name__ == "__main__":
    main()
