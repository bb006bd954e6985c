"""Batch-8 decode step vs the read floor with and without the packed text head (#17, item 3).

Small size, random weights, greedy text decode of 10 ids, 2 threads; each repeat times the
read floor (``p.sum()`` over the step's parameters) right before each decode, and the
ratios step / floor are reported (median, min, max over 5 repeats).

    python -m benchmarks.batch_layout
"""
import torch, time, statistics
from benchmarks.sizes import build
from benchmarks.decode_speed import read_floor
from espnet2_echat.data.layout import LayoutBuilder
from espnet2_echat.inference.decoder import build_plan, generate
from espnet2_echat.inference.settings import DecodingOptions
torch.set_num_threads(2)
model = build("small"); llm = model.llm
body = [p for n, p in llm.causal_lm.model.named_parameters() if "embed" not in n] + [llm.causal_lm.lm_head.weight]
b = LayoutBuilder("conf/tokenizer/qwen2.5", llm.ids); prompt = torch.tensor(b.prompt("speech2text_token"))
wav = torch.randn(1, 36160) * 0.1
with torch.no_grad():
    audio = model.audio_per_sample([prompt], wav, torch.tensor([wav.shape[1]]))
llm.use_column_major_weights()
n = 10
plan = build_plan("text", DecodingOptions(do_sample=False, max_new_tokens=n, max_new_speech_tokens=0, min_new_tokens=n), llm.ids)
res = {}
for B in (1, 8):
    with torch.no_grad():
        batch = model.build_inputs([prompt] * B, audio * B, padding_side="left")
    run = lambda: generate(llm, batch.inputs_embeds, batch.attention_mask, batch.position_ids, plan)
    packed = llm.packed_head
    def unpacked():
        llm.packed_head = None
        try: run()
        finally: llm.packed_head = packed
    run(); unpacked()
    r = {"packed": [], "unpacked": []}
    for _ in range(5):
        f = read_floor(body)
        t0 = time.perf_counter(); run(); r["packed"].append((time.perf_counter() - t0) / n / f)
        if B > 1:
            f = read_floor(body)
            t0 = time.perf_counter(); unpacked(); r["unpacked"].append((time.perf_counter() - t0) / n / f)
    for k, v in r.items():
        if v: print(B, k, "step/read floor: median %.2f min %.2f max %.2f" % (statistics.median(v), min(v), max(v)), "floor ms %.1f" % (f * 1e3))
