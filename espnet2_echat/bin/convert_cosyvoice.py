#!/usr/bin/env python3
"""Convert a CosyVoice-300M-25Hz directory to an ESPnet token2wav model.

    python -m espnet2_echat.bin.convert_cosyvoice --cosyvoice_dir DIR --out_dir DIR \
        [--prompt_wav WAV [--prompt_speech_token FILE] [--prompt_embedding NPY]]
"""

import argparse
import logging
from typing import List, Optional


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cosyvoice_dir",
        required=True,
        help="dir with cosyvoice.yaml, flow.pt, hift.pt",
    )
    parser.add_argument(
        "--out_dir", required=True, help="where config.yaml and model.pth are written"
    )
    parser.add_argument(
        "--prompt_wav", default=None, help="prompt voice stored with the model"
    )
    parser.add_argument(
        "--prompt_speech_token",
        default=None,
        help="speech tokens of the prompt wav (ids separated by spaces, optionally after an utt id)",
    )
    parser.add_argument(
        "--prompt_embedding",
        default=None,
        help=".npy with the 192-d x-vector of the prompt",
    )
    parser.add_argument(
        "--onnx_dir",
        default=None,
        help="dir with campplus.onnx / speech_tokenizer_v1.onnx to compute what is not given (needs onnxruntime)",
    )
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    """Entry point."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    args = get_parser().parse_args(cmd)
    # imported after parsing, not at the top: --help must not import torch/transformers
    from espnet2_echat.convert.cosyvoice import convert_cosyvoice_cli
    convert_cosyvoice_cli(**vars(args))


if __name__ == "__main__":
    main()
