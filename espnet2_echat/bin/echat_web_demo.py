"""Serve the OSUM-EChat Gradio chat demo for a trained or converted model.

Example::

    python -m espnet2_echat.bin.echat_web_demo --model_tag exp/echat_tiny --server_port 7860
"""

import argparse
import logging

from espnet2.utils.types import str2bool, str_or_none

from espnet2_echat.inference.web_demo import launch


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train_config", type=str_or_none)
    parser.add_argument("--model_file", type=str_or_none)
    parser.add_argument("--model_tag", type=str_or_none, help="model zoo name, packed zip or dir")
    parser.add_argument("--token2wav_train_config", type=str_or_none)
    parser.add_argument("--token2wav_model_file", type=str_or_none)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--reference_compat", type=str2bool, default=False)
    parser.add_argument("--server_name", default="127.0.0.1")
    parser.add_argument("--server_port", type=int, default=7860)
    parser.add_argument("--share", type=str2bool, default=False)
    parser.add_argument("--max_new_tokens", type=int, help="default: the task's")
    parser.add_argument("--max_new_speech_tokens", type=int, help="default: the task's")
    return parser


def main(cmd=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    launch(**vars(get_parser().parse_args(cmd)))


if __name__ == "__main__":
    main()
