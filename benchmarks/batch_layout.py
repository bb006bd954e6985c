"""Batch-8 decode step vs the read floor by layout (#17, item 3).

Small size, random weights, greedy text decode of 24 ids, 2 threads; a step's time is taken
from the second step on (the prefill of the batch's prompts and the first step left out: an
earlier version divided the whole ``generate`` call by the ids, prefill included, which
overstated batch 8's step); each repeat times the read floor (``p.sum()`` over the step's parameters) right before each decode, and the
ratios step / floor are reported (median, min, max over 5 repeats), for the layouts:
``unpacked`` (the head through MKL, which re-packs it per call; the body in column blocks),
``head`` (the text head through a copy packed once for oneDNN, the body in column blocks),
``head_and_body`` (the body's products packed for oneDNN too: the default,
``lean_decoder.PACK_BATCH_STEPS``) and ``int8_heads`` (``--int8_heads true``: the heads as
fbgemm dynamic int8, a quarter of the head's bytes, the body packed; its ratio is also given
against the floor of the bytes it reads, ``over_own_floor_median``, derived from the fp32
floor by the byte ratio). On the Xeon VM of an earlier session packing the body gained
nothing (``batch_layout_cpu.json``); on the AMD EPYC VM it does.

    python -m benchmarks.batch_layout --threads 2 --out benchmarks/batch_layout_cpu.json
"""
import argparse
import copy
import json
import os
import statistics
import time

import torch

from benchmarks.decode_speed import read_floor
from benchmarks.sizes import build
from espnet2_echat.data.layout import LayoutBuilder
from espnet2_echat.inference.decoder import build_plan, iter_generate
from espnet2_echat.inference.settings import DecodingOptions
from espnet2_echat.models import lean_decoder
from espnet2_echat.models.int8_heads import use_int8_heads

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--out", default=None)
args = parser.parse_args()
torch.set_num_threads(args.threads)
model = build("small")
llm = model.llm
params = [p for n, p in llm.causal_lm.model.named_parameters() if "embed" not in n]
params.append(llm.causal_lm.lm_head.weight)
b = LayoutBuilder("conf/tokenizer/qwen2.5", llm.ids)
prompt = torch.tensor(b.prompt("speech2text_token"))
wav = torch.randn(1, 36160) * 0.1
with torch.no_grad():
    audio = model.audio_per_sample([prompt], wav, torch.tensor([wav.shape[1]]))
llm.use_column_major_weights()
n = 24


def step_seconds(decoder, batch, plan) -> float:
    """Seconds per decode step after the first: the prefill (8 prompts at batch 8) and the
    first step are left out, so the figure is what each further token of every row costs."""
    steps = iter_generate(decoder, batch.inputs_embeds, batch.attention_mask, batch.position_ids, plan)
    next(steps)
    t0 = time.perf_counter()
    count = sum(1 for _ in steps)
    return (time.perf_counter() - t0) / count


options = DecodingOptions(do_sample=False, max_new_tokens=n, max_new_speech_tokens=0, min_new_tokens=n)
plan = build_plan("text", options, llm.ids)
head = llm.packed_head
int8 = copy.deepcopy(llm)
use_int8_heads(int8)  # text and speech heads as fbgemm dynamic int8 (--int8_heads true)
# what a text step reads with int8 heads: the body as before, the head as int8 (+ its scales)
fp32_bytes = sum(p.numel() * p.element_size() for p in params)
head_w = llm.causal_lm.lm_head.weight
int8_bytes = fp32_bytes - head_w.numel() * head_w.element_size() + head_w.numel() + 4 * head_w.shape[0]
variants = {  # name: (the LLM decoding, its packed head, the body packed)
    "unpacked": (llm, None, False),
    "head": (llm, head, False),
    "head_and_body": (llm, head, True),
    "int8_heads": (int8, None, True),
}
res = {"threads": args.threads, "load_before": os.getloadavg(), "int8_bytes_over_fp32": int8_bytes / fp32_bytes}
for B in (1, 8):
    with torch.no_grad():
        batch = model.build_inputs([prompt] * B, audio * B, padding_side="left")
    names = list(variants) if B > 1 else ["head_and_body", "int8_heads"]
    ratios = {}
    for name in names:
        decoder, llm.packed_head, lean_decoder.PACK_BATCH_STEPS = variants[name]
        step_seconds(decoder, batch, plan)  # warm-up, packing
        ratios[name] = []
    for _ in range(5):
        for name in names:
            decoder, llm.packed_head, lean_decoder.PACK_BATCH_STEPS = variants[name]
            f = read_floor(params)  # the fp32 step's floor, taken next to each decode
            ratios[name].append(step_seconds(decoder, batch, plan) / f)
    for name, v in ratios.items():
        row = {"median": statistics.median(v), "min": min(v), "max": max(v), "all": v}
        if name == "int8_heads":  # against the floor of the bytes it reads (derived)
            row["over_own_floor_median"] = statistics.median(v) * fp32_bytes / int8_bytes
        res[f"batch{B}_{name}"] = row
        print(B, name, "step/fp32 read floor: median %.2f min %.2f max %.2f" % (statistics.median(v), min(v), max(v)), flush=True)
res["load_after"] = os.getloadavg()
if args.out:
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
