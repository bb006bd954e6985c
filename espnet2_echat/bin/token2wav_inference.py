#!/usr/bin/env python3
"""Synthesise a Kaldi-style ``speech_token`` file (``uttid id id ...``) to wavs + ``wav.scp``.

    python -m espnet2_echat.bin.token2wav_inference --speech_token decode/speech_token \
        --train_config exp/t2w/config.yaml --model_file exp/t2w/model.pth --output_dir decode/t2w
"""

import argparse
import logging
from typing import List, Optional

from espnet2.utils.types import str2bool

from espnet2_echat.inference.threads import add_nthreads_argument, set_nthreads
from espnet2_echat.inference.serving_options import add_estimator_backend_argument


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--speech_token", required=True, help="Kaldi-style speech-token file"
    )
    parser.add_argument(
        "--output_dir", required=True, help="writes wav/<uttid>.wav and wav.scp"
    )
    parser.add_argument("--train_config", required=True, help="token2wav config.yaml")
    parser.add_argument("--model_file", required=True, help="token2wav model.pth")
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA or Ascend NPU when present, else cpu), cpu, cuda[:i], npu[:i]"
    )
    add_nthreads_argument(parser)
    parser.add_argument(
        "--n_timesteps", type=int, default=10, help="Euler steps (10 as the reference)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the flow/vocoder noise"
    )
    parser.add_argument(
        "--streaming", type=str2bool, default=False, help="chunked synthesis"
    )
    parser.add_argument(
        "--reference_compat",
        type=str2bool,
        default=False,
        help="streaming with the reference's 34-frame (50 Hz) flow cache",
    )
    parser.add_argument(
        "--reference_wav_scp",
        default=None,
        help="original audio of the tokens: also write mel_distance and mel_distance.json",
    )
    group = parser.add_argument_group(
        "speaker prompt (default: the one stored in the model)"
    )
    group.add_argument("--prompt_wav", default=None, help="prompt voice")
    group.add_argument(
        "--prompt_speech_token",
        default=None,
        help="one line of the prompt's speech tokens ([uttid] id id ...)",
    )
    group.add_argument("--prompt_embedding", default=None, help=".npy 192-d x-vector")
    parser.add_argument(
        "--matmul_dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="the flow estimator's products and HiFT's convolutions (bfloat16: ~1.8x faster on AMX CPUs)",
    )
    add_estimator_backend_argument(parser, "--estimator_backend")
    parser.add_argument(
        "--first_token_hop_len",
        type=int,
        default=None,
        help="streaming: tokens of the first chunk's hop (default the reference's 50)",
    )
    group.add_argument(
        "--onnx_dir",
        default=None,
        help="dir with campplus.onnx / speech_tokenizer_v1.onnx (needs onnxruntime)",
    )
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    """Entry point."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    args = vars(get_parser().parse_args(cmd))
    # imported after parsing, not at the top: --help must not import torch/transformers
    from espnet2_echat.inference.token2wav import synthesize_speech_token_file
    set_nthreads(args.pop("nthreads"))
    synthesize_speech_token_file(**args)


if __name__ == "__main__":
    main()
