"""Convert a released OSUM-EChat checkpoint into EChatTask's config.yaml + model.pth."""

import argparse
import logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--osum_checkpoint", required=True, help="e.g. tag_think_final.pt")
    parser.add_argument("--osum_config", required=True, help="the reference's ct_config.yaml")
    parser.add_argument(
        "--llm_dir", required=True, help="LLM config + tokenizer dir (e.g. Qwen2.5-3B-Instruct)"
    )
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    return parser


def main(cmd=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = get_parser().parse_args(cmd)
    # imported after parsing, not at the top: --help must not import torch/transformers
    from espnet2_echat.convert.osum_echat import convert_osum_echat
    convert_osum_echat(args.osum_checkpoint, args.osum_config, args.llm_dir, args.out_dir, args.dtype)


if __name__ == "__main__":
    main()
