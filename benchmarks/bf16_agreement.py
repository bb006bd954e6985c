"""Agreement of bfloat16 decoding with float32 on the golden set's inputs (issue #17, item 6).

``Speech2Response(dtype="bfloat16")`` holds the encoder, adapter and LLM weights in bfloat16
(half the bytes a decode step reads). For every utterance of the golden set and every task
below, both models decode greedily with the same budgets; reported per case: whether the id
sequences are equal, the first position where they differ, and the logit error over the
steps before it (max |bf16 - fp32| and the same divided by max |fp32|, per step's raw head
logits). Timing is not part of this script (see ``decode_speed.py``).

``--variant int8_heads`` compares instead an fp32 model whose text and speech heads are
fbgemm's dynamic int8 Linear (``torch.ao.quantization.quantize_dynamic``: int8 weights per
output channel, activations quantised per call): ``--int8_heads true`` of echat_inference.

    python -m benchmarks.bf16_agreement --out benchmarks/bf16_agreement_tiny.json
    python -m benchmarks.bf16_agreement --variant int8_heads --out benchmarks/int8_heads_agreement_tiny.json
"""

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

TASKS = [("asr", "none"), ("s2t_chat", "none"), ("s2s", "none"), ("s2s", "tag"), ("tts", "none"),
         ("t2t", "none")]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixtures", default=os.environ.get("ECHAT_REF_FIXTURES", "../shared/fixtures"))
    parser.add_argument("--max_tokens", type=int, default=20)
    parser.add_argument("--max_speech_tokens", type=int, default=30)
    parser.add_argument("--variant", default="bfloat16", choices=["bfloat16", "int8_heads"])
    parser.add_argument("--out")
    args = parser.parse_args()
    from espnet2_echat.convert.osum_echat import convert_osum_echat
    from espnet2_echat.inference import Speech2Response
    from espnet2_echat.models.int8_heads import use_int8_heads

    fixtures = Path(args.fixtures) / "osum_echat_tiny"
    tmp = tempfile.TemporaryDirectory()
    model = Path(tmp.name)
    convert_osum_echat(str(fixtures / "model.pt"), str(fixtures / "config.yaml"), str(fixtures / "llm"), str(model))
    models = {d: Speech2Response(model / "config.yaml", model / "model.pth",
                                 dtype="float32" if d != "bfloat16" else d)
              for d in ("float32", args.variant)}
    if args.variant == "int8_heads":
        use_int8_heads(models["int8_heads"].model.llm)
    utts = json.loads((fixtures / "expected.json").read_text())["utterances"]
    greedy = dict(do_sample=False, max_new_tokens=args.max_tokens,
                  max_new_speech_tokens=args.max_speech_tokens, output_scores=True)
    cases = []
    for utt in utts:
        pcm, _ = sf.read(fixtures / utt["wav"], dtype="int16")
        wav = pcm.astype(np.float32) / 32768
        for task, think in TASKS:
            kw = dict(text=utt["text"]) if task in ("tts", "t2t") else dict(speech=wav)
            out = {d: m(task=task, think=think, **kw, **greedy) for d, m in models.items()}
            a, b = out["float32"], out[args.variant]
            first = next((i for i, (x, y) in enumerate(zip(a.ids, b.ids)) if x != y),
                         None if len(a.ids) == len(b.ids) else min(len(a.ids), len(b.ids)))
            upto = len(a.ids) if first is None else first + 1  # logits up to the first difference
            errs = []
            for sa, sb in zip(a.scores[:upto], b.scores[:upto]):
                finite = torch.isfinite(sa)
                diff = (sb.float()[finite] - sa[finite]).abs().max().item()
                errs.append((diff, diff / sa[finite].abs().max().item()))
            cases.append({"utt": utt["id"], "task": task, "think": think, "equal": first is None,
                          "first_difference": first, "length": len(a.ids),
                          "max_abs_logit_error": max(e[0] for e in errs),
                          "max_rel_logit_error": max(e[1] for e in errs)})
            print(json.dumps(cases[-1]))
    res = {"variant": args.variant, "command": "python -m benchmarks.bf16_agreement " + " ".join(f"--{k} {v}" for k, v in vars(args).items() if k != "out" and v is not None),
           "model": "golden set tiny (converted)", "cases": len(cases),
           "equal": sum(c["equal"] for c in cases),
           "max_abs_logit_error": max(c["max_abs_logit_error"] for c in cases),
           "max_rel_logit_error": max(c["max_rel_logit_error"] for c in cases),
           "details": cases}
    print(json.dumps({k: v for k, v in res.items() if k != "details"}, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    tmp.cleanup()


if __name__ == "__main__":
    main()
