"""Merge a LoRA fine-tune into the base weights (`python -m espnet2_echat.bin.echat_merge_lora`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Merge LoRA adapters into the base LLM")
    parser.add_argument("--config", type=Path, required=True, help="training config.yaml")
    parser.add_argument("--model_file", type=Path, required=True, help="e.g. valid.loss.ave.pth")
    parser.add_argument("--out_dir", type=Path, required=True)
    return parser


def main(cmd=None):
    args = get_parser().parse_args(cmd)
    from espnet2_echat.tasks.merge_lora import merge_lora_model_file  # after --help: slow import

    config, model = merge_lora_model_file(args.config, args.model_file, args.out_dir)
    print(f"wrote {config} and {model}")


if __name__ == "__main__":
    main()
