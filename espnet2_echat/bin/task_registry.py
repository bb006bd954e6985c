"""Ask the task registry (``espnet2_echat.data.task_registry``) from a shell script.

Examples::

    python -m espnet2_echat.bin.task_registry decode-task test_s2t_tag_think --think tag
    # -> "s2t_chat tag"  (nothing for a set not decoded under that think mode)
    python -m espnet2_echat.bin.task_registry inputs tts dump/raw/test_tts
    # -> "dump/raw/test_tts/text,text,text" (+ the history triple when the dir has one)
    python -m espnet2_echat.bin.task_registry tag s2s --think tag
    # -> "<S2TCHAT> <TEXT2TOKEN> <THINK>"
    python -m espnet2_echat.bin.task_registry decode-files   # text think token_int ...
    python -m espnet2_echat.bin.task_registry sets           # "suffix<TAB>task<TAB>think<TAB>tag"
    python -m espnet2_echat.bin.task_registry tasks          # the --task names
    python -m espnet2_echat.bin.task_registry speech-token-num 4096   # -> 4097 (K+1)

It imports nothing but the registry, so it answers in well under a second.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from espnet2_echat.data.task_registry import (
    DATA_SETS,
    DECODE_FILES,
    HISTORY_INPUT,
    TASK_NAMES,
    THINK_MODES,
    check_task,
    data_set_of,
)
from espnet2_echat.data.speech_ids import SpeechIds


def decode_task(set_name: str, think: str) -> Optional[str]:
    """``"task think"`` of a test set decoded under ``--think think``, or None.

    A set whose samples carry a CoT is decoded only under its own think mode; a set
    without CoT is decoded with ``none`` whatever the think mode.
    """
    data_set = data_set_of(set_name)
    if data_set is None or data_set.think not in ("none", think):
        return None
    return f"{data_set.task} {data_set.think}"


def decode_inputs(task: str, data_dir: str) -> List[str]:
    """The ``--data_path_and_name_and_type`` values of ``task`` for one data dir."""
    triples = [check_task(task).input.triple(data_dir)]
    if (Path(data_dir) / HISTORY_INPUT.file).is_file():
        triples.append(HISTORY_INPUT.triple(data_dir))
    return triples


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("decode-task", help="decoding task and think mode of a test set name")
    p.add_argument("set_name")
    p.add_argument("--think", default="none", choices=THINK_MODES)
    p = sub.add_parser("inputs", help="--data_path_and_name_and_type values of a task")
    p.add_argument("task", choices=TASK_NAMES)
    p.add_argument("data_dir")
    p = sub.add_parser("tag", help="the task string of a task")
    p.add_argument("task", choices=TASK_NAMES)
    p.add_argument("--think", default="none", choices=THINK_MODES)
    p.add_argument("--history", action="store_true")
    p.add_argument("--streaming", action="store_true")
    sub.add_parser("decode-files", help="files echat_inference writes")
    sub.add_parser("sets", help="data-set kinds: suffix, task, think, tag")
    sub.add_parser("tasks", help="the --task names")
    p = sub.add_parser(
        "speech-token-num", help="the config's speech_token_num (K+1) for K speech tokens"
    )
    p.add_argument("num_tokens", type=int, help="K, the speech tokenizer's vocabulary")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    try:
        if args.command == "decode-task":
            answer = decode_task(args.set_name, args.think)
            lines = [answer] if answer else []
        elif args.command == "inputs":
            lines = decode_inputs(args.task, args.data_dir)
        elif args.command == "tag":
            lines = [check_task(args.task, args.think).tag_for(args.think, args.history, args.streaming)]
        elif args.command == "decode-files":
            lines = [" ".join(DECODE_FILES)]
        elif args.command == "sets":
            lines = [f"{s.suffix}\t{s.task}\t{s.think}\t{s.tag}" for s in DATA_SETS]
        elif args.command == "speech-token-num":
            lines = [str(SpeechIds(num_tokens=args.num_tokens).speech_token_num)]
        else:
            lines = [" ".join(TASK_NAMES)]
    except ValueError as e:
        print(f"task_registry: {e}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
