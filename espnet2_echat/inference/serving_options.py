"""Command-line options shared by the entry points that serve a model (web demo, server)."""

import argparse
import logging
from typing import Dict, Tuple

from espnet2.utils.types import str2bool, str_or_none

from espnet2_echat.inference.request_limits import RequestLimits
from espnet2_echat.inference.threads import add_nthreads_argument, set_nthreads

MODEL_OPTIONS = (
    "train_config",
    "model_file",
    "model_tag",
    "token2wav_train_config",
    "token2wav_model_file",
    "token2wav_matmul_dtype",
    "token2wav_estimator",
    "synthesis_nthreads",
    "device",
    "dtype",
    "reference_compat",
    "cachedir",
    "int8_heads",
    "compile_step",
)


def add_model_arguments(parser: argparse.ArgumentParser, compile_step: bool = True) -> None:
    """Which model to load and how (the keyword arguments of ``Speech2Response``);
    ``compile_step``: offer ``--compile_step`` (not where decoding never runs the fixed-shape
    step it compiles, as in the server's continuous batching)."""
    parser.add_argument("--train_config", type=str_or_none)
    parser.add_argument("--model_file", type=str_or_none)
    parser.add_argument("--model_tag", type=str_or_none, help="model zoo name, packed zip or dir")
    add_token2wav_arguments(parser)
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA or Ascend NPU when present, else cpu), cpu, cuda[:i], npu[:i]"
    )
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    add_nthreads_argument(parser)
    parser.add_argument(
        "--synthesis_nthreads",
        type=int,
        default=None,
        help="torch threads of a streamed reply's token2wav synthesis, beside decoding on "
        "the rest of --nthreads; 0 (default): decoding pauses while a chunk is synthesised "
        "with every thread (faster where synthesis dominates; see benchmarks/README.md)",
    )
    parser.add_argument("--reference_compat", type=str2bool, default=False)
    parser.add_argument("--cachedir", type=str_or_none, help="where --model_tag unpacks")
    add_decoder_speed_arguments(parser, compile_step)


def add_decoder_speed_arguments(parser, compile_step: bool = True) -> None:
    """``--int8_heads`` and ``--compile_step`` (a parser or an argument group)."""
    if compile_step:
        parser.add_argument(
            "--compile_step",
            type=str2bool,
            default=False,
            help="compiled LLM decode step (torch.compile; CUDA graphs on GPU): faster steps "
            "after a one-off compile per batch size (seconds to a minute on CPU)",
        )
    parser.add_argument(
        "--int8_heads",
        type=str2bool,
        default=False,
        help="int8 text and speech heads (CPU; fewer bytes a decode step, logits within ~2%%)",
    )


def add_token2wav_arguments(parser) -> None:
    """The token2wav model attached to decoding (a parser or an argument group)."""
    parser.add_argument("--token2wav_train_config", type=str_or_none)
    parser.add_argument("--token2wav_model_file", type=str_or_none)
    parser.add_argument(
        "--token2wav_matmul_dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="token2wav's flow-estimator products and HiFT convolutions (bfloat16: AMX/BF16 "
        "CPUs, GPUs)",
    )
    add_estimator_backend_argument(parser, "--token2wav_estimator")


def add_estimator_backend_argument(parser, name: str = "--estimator_backend") -> None:
    """The switch of ``Token2WavInference.estimator_backend`` (torch | onnx | compiled)."""
    parser.add_argument(
        name,
        default="torch",
        choices=["torch", "onnx", "compiled"],
        help="onnx: the token2wav flow estimator on ONNX Runtime (float32, CPU, exported at "
        "load); compiled: under torch.compile, one program for all lengths (compiles on the "
        "first call)",
    )


def parse_serving_args(parser: argparse.ArgumentParser, cmd=None) -> Tuple[Dict, RequestLimits]:
    """Parse ``cmd``, set up logging and torch's threads; (remaining args, limits)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = vars(parser.parse_args(cmd))
    set_nthreads(args.pop("nthreads"))
    return args, pop_limits(args)


def add_limit_arguments(parser: argparse.ArgumentParser, defaults: RequestLimits) -> None:
    """The fields of :class:`RequestLimits` and the login file."""
    group = parser.add_argument_group("Request limits (espnet2_echat.inference.request_limits)")
    group.add_argument("--max_audio_seconds", type=float, default=defaults.max_audio_seconds)
    group.add_argument("--max_upload_bytes", type=int, default=defaults.max_upload_bytes)
    group.add_argument("--max_text_chars", type=int, default=defaults.max_text_chars)
    group.add_argument("--max_concurrent", type=int, default=defaults.max_concurrent)
    group.add_argument("--max_queued", type=int, default=defaults.max_queued, help="beyond: 'busy'")
    group.add_argument("--queue_timeout_s", type=float, default=defaults.queue_timeout_s)
    group.add_argument(
        "--auth_file", type=str_or_none, help="user:password lines; default $ECHAT_AUTH, else none"
    )


def pop_limits(args: Dict) -> RequestLimits:
    """Remove the :class:`RequestLimits` fields from parsed ``args`` and build the limits."""
    names = [f for f in RequestLimits.__dataclass_fields__ if f in args]
    return RequestLimits(**{n: args.pop(n) for n in names})


def load_model(args: Dict):
    """A ``Speech2Response`` from the :data:`MODEL_OPTIONS` in ``args`` (removed from it)."""
    from espnet2_echat.inference.speech2response import Speech2Response

    opts = {k: args.pop(k) for k in MODEL_OPTIONS if k in args}
    tag, cachedir = opts.pop("model_tag"), opts.pop("cachedir")
    if tag:
        return Speech2Response.from_pretrained(tag, cachedir=cachedir, **opts)
    return Speech2Response(opts.pop("train_config"), opts.pop("model_file"), **opts)
