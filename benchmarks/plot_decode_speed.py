"""Bar chart of decode_speed_*.json: ms per decode step, ours vs plain transformers vs the
bandwidth floor, with the reference's own figures of performance_anchors.md."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
# performance_anchors.md: the reference code on a 2-core CPU (median of its ranges)
REFERENCE_MS = {("tiny", "text"): 3.45, ("small", "text"): 82.5, ("small", "speech"): 49.5}


def main():
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, size in zip(axes, ("tiny", "small")):
        r = json.loads((HERE / f"decode_speed_{size}_b1.json").read_text())
        bars = {
            "reference (anchors)": REFERENCE_MS.get((size, "text")),
            "transformers generate": r["transformers_text_ms_per_token"][0],
            "ours, text step": r["ours_text_ms_per_token"][0],
            "ours, speech step": r["ours_speech_ms_per_token"][0],
            "floor, text step": r["floor_ms_per_token"]["text"],
        }
        bars = {k: v for k, v in bars.items() if v is not None}
        ax.bar(range(len(bars)), list(bars.values()),
               color=["grey", "tab:orange", "tab:blue", "tab:cyan", "black"][: len(bars)])
        ax.set_xticks(range(len(bars)), list(bars), rotation=30, ha="right")
        ax.set_ylabel("ms per decode step (batch 1, fp32, 2 threads)")
        ax.set_title(f"{size} size")
        for i, v in enumerate(bars.values()):
            ax.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "decode_speed.png", dpi=100)


if __name__ == "__main__":
    main()
