#!/usr/bin/env python3
"""Score one decoded set:
``python -m espnet2_echat.bin.echat_score --data_dir DIR --decode_dir DIR --out_dir DIR``,
or many in one process: ``--jobs FILE``, one ``DATA_DIR DECODE_DIR OUT_DIR TASK THINK
KEY_FILE`` a line (``-``: the flag's value), as the recipe's scoring stage runs it.

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
    THINK_READINGS,
    ScoreOptions,
    read_score_jobs,
    score_decode_dir,
)
from espnet2_echat.scoring.task_spec import CLI_TASKS


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data_dir", type=Path, help="Kaldi-style data dir (references)"
    )
    parser.add_argument(
        "--decode_dir", type=Path, help="output dir of echat_inference"
    )
    parser.add_argument(
        "--out_dir", type=Path, help="where results.json goes"
    )
    parser.add_argument(
        "--task",
        choices=sorted(CLI_TASKS),
        default=None,
        help="default: the data dir's task file",
    )
    parser.add_argument("--think", choices=THINK_READINGS, default="auto")
    parser.add_argument(
        "--jobs",
        type=Path,
        default=None,
        help="score many decode dirs in one process: a file of lines DATA_DIR DECODE_DIR "
        "OUT_DIR TASK THINK KEY_FILE ('-': this command's --task / --think / --key_file)",
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
    """Parse the arguments and score the decode dir(s); 1 when an utterance could not be
    scored (listed in ``OUT_DIR/errors``; every other one is scored)."""
    parser = get_parser()
    args = parser.parse_args(argv)
    if not args.jobs and not (args.data_dir and args.decode_dir and args.out_dir):
        parser.error("give --jobs, or --data_dir, --decode_dir and --out_dir")
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
    if args.jobs:
        jobs = read_score_jobs(str(args.jobs), opts)
    else:
        jobs = [(args.data_dir, args.decode_dir, args.out_dir, opts)]
    tally = Tally()
    failures = []
    for data_dir, decode_dir, out_dir, job_opts in jobs:
        results = score_decode_dir(data_dir, decode_dir, out_dir, job_opts, tally)
        json.dump(results, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
        failed = results["info"].get("num_errors", 0)
        if failed:
            failures.append(
                f"echat_score: {failed} of {results['num_utts']} utterances could not be "
                f"scored; see {Path(out_dir) / 'errors'}"
            )
    print(tally.summary("echat_score"), file=sys.stderr)
    for line in failures:
        print(line, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
