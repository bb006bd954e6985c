"""Decode speed of the speech LLM vs the memory-bandwidth floor and plain transformers.

Everything is measured side by side in one run on the same weights (the "small" size of
performance_anchors.md, fp32, greedy; ``--batch`` prompts decoded together, 1 by default):

* read bandwidth: ``x.sum()`` over a 1 GiB tensor;
* floor per step: parameter bytes a decode step must read / read bandwidth (text steps read
  the LLM body and lm_head; speech steps the body and the speech head); a batch reads them
  once per step, so ``*_ms_per_token`` figures are per step (per token of each row);
* the same floor measured directly: ``p.sum()`` over exactly the parameters a step reads,
  timed right before each timed decode (the VM's bandwidth drifts by up to 2x within
  minutes, so each decode is compared with the floor taken next to it: ``paired_ratios``);
* ours: ``espnet2_echat.inference.decoder.generate`` (ASR-like text decode, S2S-like speech
  decode), and the prefill of an S2S prompt with 2.26 s of audio: ``prefill_ms`` is the
  encoder, adapter, splice *and* the LLM forward over the prompt up to the first token (what
  the reference's prefill figure covers); ``audio_and_splice_ms`` the part before the LLM;
* plain transformers: the LLM's own ``generate`` (``Qwen2ForCausalLM``, ``LlamaForCausalLM``)
  from the same prefill embeddings;
* sampled text decode with the understanding tasks' defaults (top-k 5, top-p 0.9,
  repetition penalty 1.05), ours and transformers' ``generate`` with the same settings.

Run: ``python benchmarks/decode_speed.py [--size small] [--tokens 100] [--out results.json]``.
"""

import argparse
import copy
import json
import platform
import statistics
import time

import torch

from benchmarks.sizes import build
from espnet2_echat.data.layout import LayoutBuilder
from espnet2_echat.inference.decoder import build_plan, generate
from espnet2_echat.inference.settings import DecodingOptions


def timed(fn, repeats):
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out), statistics.median(out)


def read_bandwidth(gib: float = 1.0, repeats: int = 5) -> float:
    x = torch.ones(int(gib * 2**30 / 4))
    x.sum()
    best, _ = timed(x.sum, repeats)
    return x.numel() * 4 / best


def read_floor(params, repeats: int = 3) -> float:
    """Seconds to read ``params`` once (``p.sum()`` each, best of ``repeats``)."""
    return timed(lambda: [p.sum() for p in params], repeats)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="small")
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1, help="prompts decoded together")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = build(args.size)
    llm = model.llm
    body = [p for n, p in llm.causal_lm.model.named_parameters() if "embed" not in n]
    step_params = {"text": body + [llm.causal_lm.lm_head.weight],
                   "speech": body + list(llm.speech_head.parameters())}
    bw = read_bandwidth()
    floor_text, floor_speech = (
        sum(p.numel() * p.element_size() for p in step_params[k]) / bw for k in ("text", "speech")
    )

    builder = LayoutBuilder("conf/tokenizer/qwen2.5", llm.ids)
    wav = torch.randn(1, int(2.26 * 16000)) * 0.1
    prompt = torch.tensor(builder.prompt("speech2text_token"))

    def prefill():
        with torch.no_grad():
            audio = model.audio_per_sample([prompt], wav, torch.tensor([wav.shape[1]]))
            return model.build_inputs([prompt] * args.batch, audio * args.batch, padding_side="left")

    batch = prefill()
    n = args.tokens
    text_opts = DecodingOptions(do_sample=False, max_new_tokens=n, max_new_speech_tokens=0,
                                min_new_tokens=n)
    # text decode: never stop early (min length bans <|im_end|>, budget n)
    text_plan = build_plan("text", text_opts, llm.ids)
    speech_opts = DecodingOptions(do_sample=False, max_new_tokens=0, max_new_speech_tokens=n,
                                  min_new_tokens=n)
    speech_plan = build_plan("tts", speech_opts, llm.ids,
                             stopping_criteria=[])

    sampled_opts = DecodingOptions(do_sample=True, top_k=5, top_p=0.9, repetition_penalty=1.05,
                                   max_new_tokens=n, max_new_speech_tokens=0, min_new_tokens=n)
    sampled_plan = build_plan("text", sampled_opts, llm.ids)

    def ours(plan):
        def run():
            generate(llm, batch.inputs_embeds, batch.attention_mask, batch.position_ids, plan)
        return run

    plain = copy.deepcopy(llm.causal_lm)  # transformers' generate on the weights as loaded

    def plain_transformers(**sampling):
        def run():
            with torch.no_grad():
                plain.generate(
                    inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                    max_new_tokens=n, min_new_tokens=n, pad_token_id=0, eos_token_id=None,
                    **(sampling or dict(do_sample=False)),
                )
        return run

    res = {"size": args.size, "threads": args.threads, "tokens": n, "batch": args.batch,
           "machine": platform.processor() or platform.machine(),
           "read_bandwidth_GBps": bw / 1e9,
           "floor_ms_per_token": {"text": floor_text * 1e3, "speech": floor_speech * 1e3}}
    first_opts = DecodingOptions(do_sample=False, max_new_tokens=1, max_new_speech_tokens=0,
                                 min_new_tokens=1)
    first_plan = build_plan("text", first_opts, llm.ids)

    def prefill_with_llm():
        b = prefill()
        generate(llm, b.inputs_embeds, b.attention_mask, b.position_ids, first_plan)

    res["audio_and_splice_ms"] = [t * 1e3 for t in timed(prefill, args.repeats)]
    res["prefill_ms"] = [t * 1e3 for t in timed(prefill_with_llm, args.repeats)]
    if not torch.cuda.is_available():
        llm.use_column_major_weights()  # ours: the CPU decode layout
    sampling = dict(do_sample=True, top_k=5, top_p=0.9, repetition_penalty=1.05)
    def unpacked(plan):  # batch steps without the packed head: the one-row layout
        def run():
            packed, llm.packed_head = llm.packed_head, None
            try:
                ours(plan)()
            finally:
                llm.packed_head = packed
        return run

    runs = (("text", ours(text_plan), plain_transformers(), "text"),
            ("speech", ours(speech_plan), None, "speech"),
            ("sampled", ours(sampled_plan), plain_transformers(**sampling), "text"))
    if args.batch > 1 and getattr(llm, "packed_head", None) is not None:
        runs += (("text_unpacked", unpacked(text_plan), None, "text"),)
    res["paired_ratios"] = {}
    for name, mine, theirs, kind in runs:
        # each repeat times the read floor, ours and transformers back to back, so that a
        # drift of the machine's speed between repeats cancels in the paired ratios
        times = {"floor": [], "ours": [], "transformers": []}
        for fn in (mine, theirs):
            if fn is not None:
                fn()  # warm-up
        for _ in range(args.repeats):
            times["floor"].append(read_floor(step_params[kind]))
            times["ours"].append(timed(mine, 1)[0] / n)
            if theirs is not None:
                times["transformers"].append(timed(theirs, 1)[0] / n)
        for who in ("ours", "transformers"):
            if times[who]:
                res[f"{who}_{name}_ms_per_token"] = [
                    min(times[who]) * 1e3, statistics.median(times[who]) * 1e3
                ]
        res[f"read_floor_{name}_ms"] = statistics.median(times["floor"]) * 1e3
        pairs = {"read_floor": times["floor"], "transformers": times["transformers"]}
        for other, values in pairs.items():
            if values:
                ratios = [a / b for a, b in zip(times["ours"], values)]
                res["paired_ratios"][f"ours_{name}_vs_{other}"] = statistics.median(ratios)
    res["read_bandwidth_after_GBps"] = read_bandwidth() / 1e9
    res["ratios"] = {
        "ours_text_vs_floor": res["ours_text_ms_per_token"][0] / res["floor_ms_per_token"]["text"],
        "ours_speech_vs_floor": res["ours_speech_ms_per_token"][0]
        / res["floor_ms_per_token"]["speech"],
    }
    print(json.dumps(res, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
