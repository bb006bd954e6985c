"""Compute the frozen encoder's outputs once per utterance for ``--encoder_cache true``.

Usage::

    python -m espnet2_echat.bin.dump_encoder_outputs --config conf/small_real/train_stage1_understanding.yaml \\
        --data_dir dump/train_asr dump/dev_asr ... --store_dir dump/encoder_out

Writes ``<data_dir>/encoder_out.scp`` + ``encoder_out.json`` per data dir with audio input
(multi-turn dirs are skipped) and one ``.npy`` per distinct wav under ``--store_dir``
(``espnet2_echat.train.encoder_cache``). Dirs already dumped by the same encoder are skipped.
"""

import argparse
import logging
from typing import List, Optional

from espnet2_echat.inference.threads import add_nthreads_argument, set_nthreads


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="the training config (encoder, encoder_init)")
    parser.add_argument("--data_dir", nargs="+", required=True)
    parser.add_argument("--store_dir", required=True, help="where the .npy outputs go")
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"],
                        help="storage dtype of the outputs (float16 halves the disk use)")
    add_nthreads_argument(parser)
    parser.add_argument("--log_level", default="INFO")
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    set_nthreads(args.nthreads)
    import torch

    from espnet2_echat.tasks.echat import EChatTask
    from espnet2_echat.train.encoder_cache import dump_encoder_outputs, encoder_fingerprint

    train_args = EChatTask.get_parser().parse_args(["--config", args.config])
    if not getattr(train_args, "encoder_init", None):
        raise ValueError(
            f"{args.config}: no encoder_init; cached outputs need the encoder's weights to be "
            "fixed by the config (a random encoder differs at every build)"
        )
    torch.set_grad_enabled(False)
    frontend, encoder = EChatTask.build_speech_encoder(train_args)
    dump_encoder_outputs(
        frontend, encoder, args.data_dir, args.store_dir, encoder_fingerprint(train_args),
        args.dtype,
    )


if __name__ == "__main__":
    main()
