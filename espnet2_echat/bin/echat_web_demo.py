"""Serve the OSUM-EChat Gradio chat demo for a trained or converted model.

Example::

    python -m espnet2_echat.bin.echat_web_demo --model_tag exp/echat_tiny --server_port 7860
"""

import argparse
import logging

from espnet2.utils.types import str2bool, str_or_none

from espnet2_echat.inference.request_limits import RequestLimits
from espnet2_echat.inference.threads import add_nthreads_argument, set_nthreads
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
    parser.add_argument(
        "--token2wav_matmul_dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="token2wav flow estimator's transformer products (bfloat16: AMX/BF16 CPUs, GPUs)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA or Ascend NPU when present, else cpu), cpu, cuda[:i], npu[:i]"
    )
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    add_nthreads_argument(parser)
    parser.add_argument("--reference_compat", type=str2bool, default=False)
    parser.add_argument("--server_name", default="127.0.0.1")
    parser.add_argument("--server_port", type=int, default=7860)
    parser.add_argument("--share", type=str2bool, default=False)
    parser.add_argument("--max_new_tokens", type=int, help="default: the task's")
    parser.add_argument("--max_new_speech_tokens", type=int, help="default: the task's")
    group = parser.add_argument_group("Request limits (espnet2_echat.inference.request_limits)")
    d = RequestLimits()
    group.add_argument("--max_audio_seconds", type=float, default=d.max_audio_seconds)
    group.add_argument("--max_upload_bytes", type=int, default=d.max_upload_bytes)
    group.add_argument("--max_text_chars", type=int, default=d.max_text_chars)
    group.add_argument("--max_concurrent", type=int, default=d.max_concurrent)
    group.add_argument("--max_queued", type=int, default=d.max_queued, help="beyond: 'busy'")
    group.add_argument("--queue_timeout_s", type=float, default=d.queue_timeout_s)
    group.add_argument(
        "--auth_file", type=str_or_none, help="user:password lines; default $ECHAT_AUTH, else none"
    )
    group.add_argument("--cachedir", type=str_or_none, help="where --model_tag unpacks")
    return parser


def main(cmd=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = vars(get_parser().parse_args(cmd))
    set_nthreads(args.pop("nthreads"))
    names = [f for f in RequestLimits.__dataclass_fields__ if f in args]
    limits = RequestLimits(**{n: args.pop(n) for n in names})
    launch(limits=limits, **args)


if __name__ == "__main__":
    main()
