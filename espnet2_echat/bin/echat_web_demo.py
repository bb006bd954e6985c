"""Serve the OSUM-EChat Gradio chat demo for a trained or converted model.

Example::

    python -m espnet2_echat.bin.echat_web_demo --model_tag exp/echat_tiny --server_port 7860
"""

import argparse

from espnet2.utils.types import str2bool

from espnet2_echat.inference.serving_options import add_limit_arguments, add_model_arguments, parse_serving_args
from espnet2_echat.inference.request_limits import RequestLimits


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    parser.add_argument("--server_name", default="127.0.0.1")
    parser.add_argument("--server_port", type=int, default=7860)
    parser.add_argument("--share", type=str2bool, default=False)
    parser.add_argument("--max_new_tokens", type=int, help="default: the task's")
    parser.add_argument("--max_new_speech_tokens", type=int, help="default: the task's")
    add_limit_arguments(parser, RequestLimits())
    return parser


def main(cmd=None):
    args, limits = parse_serving_args(get_parser(), cmd)
    # imported after parsing, not at the top: --help must not import gradio/torch
    from espnet2_echat.inference.web_demo import launch

    launch(limits=limits, **args)


if __name__ == "__main__":
    main()
