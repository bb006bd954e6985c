"""Store a speaker prompt (wav + its speech tokens) in a trained token2wav model."""

import argparse
import logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train_config", required=True)
    parser.add_argument("--model_file", required=True)
    parser.add_argument("--prompt_wav", required=True)
    parser.add_argument("--prompt_speech_token", default=None, help="one line of token ids")
    parser.add_argument("--prompt_embedding", default=None, help=".npy x-vector (CAM++)")
    parser.add_argument(
        "--onnx_dir",
        default=None,
        help="dir with campplus.onnx / speech_tokenizer_v1.onnx to compute the x-vector / "
        "tokens not given (CosyVoice-300M-25Hz; needs onnxruntime)",
    )
    parser.add_argument("--out_dir", required=True)
    return parser


def main(cmd=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    a = get_parser().parse_args(cmd)
    # imported after parsing, not at the top: --help must not import torch/transformers
    from espnet2_echat.convert.speaker_prompt import store_speaker_prompt
    store_speaker_prompt(a.train_config, a.model_file, a.prompt_wav, a.out_dir,
                         a.prompt_speech_token, a.prompt_embedding, a.onnx_dir)


if __name__ == "__main__":
    main()
