"""Serve a model over HTTP to many clients, their requests decoded together (continuous batching).

OpenAI-style audio chat (``POST /v1/chat/completions``, audio as base64 WAV; streamed with
``"stream": true`` as server-sent events) and a multipart form (``POST /v1/audio/chat``);
see ``espnet2_echat/inference/server.py``. Example::

    python -m espnet2_echat.bin.echat_server --model_tag exp/echat_tiny --port 8000 \\
        --max_concurrent 8 --max_queued 16 --nthreads 2
    curl -N localhost:8000/v1/chat/completions -H 'Content-Type: application/json' -d \\
        '{"stream": true, "messages": [{"role": "user", "content": "Hello!"}]}'

``--max_concurrent`` is the decoder's batch (requests decoding together); beyond it
``--max_queued`` requests wait and any more are answered 503 busy.
"""

import argparse

from espnet2_echat.inference.serving_options import (
    add_limit_arguments,
    add_model_arguments,
    load_model,
    parse_serving_args,
)
from espnet2_echat.inference.request_limits import RequestLimits

DEFAULT_LIMITS = RequestLimits(max_concurrent=8, max_queued=16)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser, compile_step=False)  # continuous batching: varying shapes
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model_name", default="osum-echat", help="the id /v1/models lists")
    parser.add_argument(
        "--max_new_tokens", type=int, default=500, help="largest text budget a request may ask"
    )
    parser.add_argument(
        "--max_new_speech_tokens", type=int, default=1000, help="largest speech-token budget"
    )
    parser.add_argument("--speech_chunk", type=int, default=18, help="speech ids per streamed chunk")
    parser.add_argument("--log_level", default="info")
    add_limit_arguments(parser, DEFAULT_LIMITS)
    return parser


def main(cmd=None):
    args, limits = parse_serving_args(get_parser(), cmd)
    from espnet2_echat.inference.request_limits import Credentials
    from espnet2_echat.inference.server import DecodeBudget, EChatServer, serve

    credentials = Credentials.load(args.pop("auth_file"))
    s2r = load_model(args)
    server = EChatServer(
        s2r,
        limits,
        credentials,
        DecodeBudget(args.pop("max_new_tokens"), args.pop("max_new_speech_tokens")),
        args.pop("model_name"),
        args.pop("speech_chunk"),
    )
    serve(server, args.pop("host"), args.pop("port"), args.pop("log_level"))


if __name__ == "__main__":
    main()
