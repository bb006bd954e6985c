"""Decode a data dir with an OSUM-EChat model (ESPnet-style batch inference).

Example::

    python -m espnet2_echat.bin.echat_inference \\
        --train_config exp/echat/config.yaml --model_file exp/echat/valid.acc.ave.pth \\
        --data_path_and_name_and_type dump/raw/test/wav.scp,speech,sound \\
        --key_file dump/raw/test/split4/keys.1.scp --output_dir exp/echat/decode/output.1 \\
        --task s2s --think tag

With ``--jobs FILE`` (one ``OUTPUT_DIR TASK THINK KEY_FILE PATH,NAME,TYPE ...`` a line) one
process decodes many data dirs with one model load, as the recipe's decoding stage does.

Writes ``text``, ``token_int``, ``think`` (think modes), ``speech_token`` (S2S, TTS) and
``wav.scp`` (with a token2wav model) keyed by utterance id; finished utterances are skipped.
"""

import argparse
import logging
import sys

from espnet2.utils.types import str2bool, str_or_none

from espnet2_echat.inference.threads import add_nthreads_argument, set_nthreads
from espnet2_echat.inference.serving_options import (
    add_decoder_speed_arguments,
    add_token2wav_arguments,
)
from espnet2_echat.data.task_registry import TASK_NAMES, THINK_MODES


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--log_level", default="INFO")
    group = parser.add_argument_group("Input / output")
    group.add_argument(
        "--data_path_and_name_and_type",
        action="append",
        default=[],
        help="PATH,NAME,TYPE: speech (sound), text / question / history (text)",
    )
    group.add_argument("--key_file", type=str_or_none, help="decode only these utterances")
    group.add_argument("--output_dir", type=str_or_none)
    group.add_argument(
        "--jobs",
        type=str_or_none,
        help="decode several data dirs with one model load: a file of lines "
        "OUTPUT_DIR TASK THINK KEY_FILE(- for all) PATH,NAME,TYPE ... (replaces --output_dir, "
        "--task, --think, --key_file and --data_path_and_name_and_type)",
    )
    group.add_argument("--batch_size", type=int, default=1)
    group.add_argument("--ngpu", type=int, default=0, help="0: CPU, 1: the first GPU")
    group.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    add_nthreads_argument(group)
    group = parser.add_argument_group("Model")
    group.add_argument("--train_config", type=str_or_none)
    group.add_argument("--model_file", type=str_or_none)
    group.add_argument(
        "--model_tag",
        type=str_or_none,
        help="packed archive, its http(s) URL (URL#sha256=HEX checks it), Hugging Face name or dir",
    )
    group.add_argument(
        "--cachedir",
        type=str_or_none,
        help="where --model_tag unpacks (default: $ECHAT_CACHE_DIR or ~/.cache/espnet_echat)",
    )
    group.add_argument(
        "--random_init",
        type=str2bool,
        default=False,
        help="decode with random weights when no --model_file is given (tests, timing only)",
    )
    add_decoder_speed_arguments(group)
    add_token2wav_arguments(group)
    group = parser.add_argument_group("Task")
    group.add_argument("--task", choices=TASK_NAMES)
    group.add_argument("--think", default="none", choices=THINK_MODES)
    group.add_argument(
        "--prompt",
        type=str_or_none,
        help="instruction of an understanding task (default: the task's prompt)",
    )
    group.add_argument(
        "--prompt_config",
        type=str_or_none,
        help="yaml of task instructions; --prompt defaults to the first of the task's tag",
    )
    group.add_argument("--reference_compat", type=str2bool, default=False)
    group = parser.add_argument_group("Decoding (default: the task's reference setting)")
    group.add_argument("--do_sample", type=str2bool)
    group.add_argument("--top_k", type=int)
    group.add_argument("--top_p", type=float)
    group.add_argument("--temperature", type=float)
    group.add_argument("--repetition_penalty", type=float)
    group.add_argument("--max_new_tokens", type=int)
    group.add_argument("--max_new_speech_tokens", type=int)
    group.add_argument("--min_new_tokens", type=int)
    group.add_argument("--age_forcing", type=str2bool)
    group.add_argument("--speech_ngram_blocking", type=str2bool)
    group.add_argument("--seed", type=int)
    return parser


def main(cmd=None) -> int:
    """Decode; exit status 1 (after decoding every good utterance) when any failed."""
    parser = get_parser()
    args = vars(parser.parse_args(cmd))
    if not args["jobs"] and not (
        args["output_dir"] and args["task"] and args["data_path_and_name_and_type"]
    ):
        parser.error("give --jobs, or --output_dir, --task and --data_path_and_name_and_type")
    # imported after parsing, not at the top: --help must not import torch/transformers
    from espnet2_echat.inference.batch_decode import inference
    from espnet2_echat.progress import Tally

    logging.basicConfig(
        level=args.pop("log_level"),
        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s",
    )
    set_nthreads(args.pop("nthreads"))
    tally = Tally()
    summaries = inference(**args, tally=tally)
    lines = "; ".join(s.line() for s in summaries)
    print(f"{tally.summary('echat_inference')}; {lines}", file=sys.stderr)
    return 1 if any(s.num_errors for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
