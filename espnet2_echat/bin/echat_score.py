#!/usr/bin/env python3
"""Score one decoded set:
``python -m espnet2_echat.bin.echat_score --data_dir DIR --decode_dir DIR --out_dir DIR``.

Writes ``results.json`` and ``results.md`` (and sclite folders, confusion matrices, judge
answers) into ``--out_dir``; see :mod:`espnet2_echat.scoring.score_decode`.
"""

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

from espnet2_echat.inference.threads import add_nthreads_argument, set_nthreads
from espnet2_echat.progress import Tally
from espnet2_echat.scoring.judge import DIMENSIONS
from espnet2_echat.scoring.score_decode import (
    DEFAULT_RUBRIC,
    ScoreOptions,
    score_decode_dir,
)
from espnet2_echat.scoring.task_spec import CLI_TASKS


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data_dir", type=Path, required=True, help="Kaldi-style data dir (references)"
    )
    parser.add_argument(
        "--decode_dir", type=Path, required=True, help="output dir of echat_inference"
    )
    parser.add_argument(
        "--out_dir", type=Path, required=True, help="where results.json goes"
    )
    parser.add_argument(
        "--task",
        choices=sorted(CLI_TASKS),
        default=None,
        help="default: the data dir's task file",
    )
    parser.add_argument(
        "--think", choices=["auto", "tag", "language", "none"], default="auto"
    )
    parser.add_argument(
        "--language",
        choices=["auto", "en", "zh"],
        default="auto",
        help="text normalisation",
    )
    parser.add_argument(
        "--asr_model",
        default=None,
        help="Whisper for ASR of generated wavs: a transformers dir or hub name, a CTranslate2 dir, "
        "or 'wheel:whisper-base' (the PyPI-shipped Whisper-base); default: no ASR",
    )
    parser.add_argument(
        "--judge",
        default=None,
        help="'endpoint' (OpenAI-compatible; $ECHAT_JUDGE_BASE_URL, $ECHAT_JUDGE_MODEL, "
        "$ECHAT_JUDGE_API_KEY) or a local causal-LM dir; default: no judge",
    )
    parser.add_argument("--judge_rubric", type=Path, default=DEFAULT_RUBRIC)
    parser.add_argument(
        "--judge_dimensions", nargs="+", choices=DIMENSIONS, default=list(DIMENSIONS)
    )
    parser.add_argument(
        "--judge_time_budget_s",
        type=float,
        default=3600.0,
        help="seconds for all judgments; the rest count as failed",
    )
    parser.add_argument(
        "--cache_dir",
        type=Path,
        default=None,
        help="where wheel-shipped models are assembled",
    )
    parser.add_argument(
        "--key_file",
        type=Path,
        default=None,
        help="score only the utterances listed here (e.g. the keys a capped decode used); "
        "default: every utterance of the data dir, a missing output counting as empty",
    )
    parser.add_argument(
        "--dnsmos",
        action="store_true",
        help="predict the MOS of generated wavs with DNSMOS (speechmos wheel, offline)",
    )
    add_nthreads_argument(parser)  # the ASR, DNSMOS and local judge models run on torch
    parser.add_argument("--log_level", default="INFO")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Parse the arguments and score the decode dir; 1 when an utterance could not be
    scored (listed in ``OUT_DIR/errors``; every other one is scored)."""
    args = get_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s",
    )
    set_nthreads(args.nthreads)
    opts = ScoreOptions(
        task=args.task,
        think=args.think,
        language=args.language,
        asr_model=args.asr_model,
        judge=args.judge,
        judge_rubric=args.judge_rubric,
        judge_dimensions=args.judge_dimensions,
        judge_time_budget_s=args.judge_time_budget_s,
        cache_dir=args.cache_dir,
        key_file=args.key_file,
        dnsmos=args.dnsmos,
    )
    tally = Tally()
    results = score_decode_dir(args.data_dir, args.decode_dir, args.out_dir, opts, tally)
    json.dump(results, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")
    failed = results["info"].get("num_errors", 0)
    print(tally.summary("echat_score"), file=sys.stderr)
    if failed:
        print(
            f"echat_score: {failed} of {results['num_utts']} utterances could not be scored; "
            f"see {Path(args.out_dir) / 'errors'}",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
