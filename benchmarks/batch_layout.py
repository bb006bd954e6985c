"""Batch-8 decode step vs the read floor by layout (#17, item 3).

Small size, random weights, greedy text decode of 10 ids, 2 threads; each repeat times the
read floor (``p.sum()`` over the step's parameters) right before each decode, and the
ratios step / floor are reported (median, min, max over 5 repeats), for the layouts:
``unpacked`` (every product through MKL, which re-packs each weight per call) and ``head``
(the text head through a copy packed once for oneDNN, the default). Packing the body's
products too was measured with this script (``batch_layout_cpu.json``, ``head_and_body``)
and gained nothing, so it was not kept.

    python -m benchmarks.batch_layout --threads 2 --out benchmarks/batch_layout_cpu.json
"""
import argparse
import json
import os
import statistics
import time

import torch

from benchmarks.decode_speed import read_floor
from benchmarks.sizes import build
from espnet2_echat.data.layout import LayoutBuilder
from espnet2_echat.inference.decoder import build_plan, generate
from espnet2_echat.inference.settings import DecodingOptions

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
n = 10
options = DecodingOptions(do_sample=False, max_new_tokens=n, max_new_speech_tokens=0, min_new_tokens=n)
plan = build_plan("text", options, llm.ids)
head = llm.packed_head
layouts = {"unpacked": None, "head": head}
res = {"threads": args.threads, "load_before": os.getloadavg()}
for B in (1, 8):
    with torch.no_grad():
        batch = model.build_inputs([prompt] * B, audio * B, padding_side="left")
    ratios = {}
    for name, llm.packed_head in (layouts if B > 1 else {"head": head}).items():
        generate(llm, batch.inputs_embeds, batch.attention_mask, batch.position_ids, plan)  # warm-up, packing
        ratios[name] = []
    for _ in range(5):
        for name in ratios:
            llm.packed_head = layouts[name]
            f = read_floor(params)
            t0 = time.perf_counter()
            generate(llm, batch.inputs_embeds, batch.attention_mask, batch.position_ids, plan)
            ratios[name].append((time.perf_counter() - t0) / n / f)
    for name, v in ratios.items():
        res[f"batch{B}_{name}"] = {"median": statistics.median(v), "min": min(v), "max": max(v), "all": v}
        print(B, name, "step/read floor: median %.2f min %.2f max %.2f" % (statistics.median(v), min(v), max(v)), flush=True)
res["load_after"] = os.getloadavg()
if args.out:
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
