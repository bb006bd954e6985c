#!/usr/bin/env python3
"""A text-dialogue corpus -> a T2T data dir (task ``<TEXT2TEXT>``).

Two common on-disk layouts are read from ``$TEXT_DIALOGUE/<file>`` (``--file``):

* Alpaca (``alpaca_data.json``): a JSON list of ``{"instruction", "input", "output"}``;
  question = instruction (+ a space + input when not empty), reply = output.
* ShareGPT (``*.json`` list or ``*.jsonl``): ``{"id", "conversations": [{"from":
  "human"|"gpt", "value"}, ...]}``; every human turn followed by a gpt turn becomes one
  sample (multi-turn context is dropped).

Newlines become spaces (the reference does the same before tokenising,
docs/labels.md#text-normalisation). The data dir is a training set (``--role``); pairs with an
empty side are counted and left out.
"""

import json
from pathlib import Path
from typing import Iterator, List, Tuple

from prep_common import ROLES, Utts, get_parser, one_line, parse_args, report_skipped, write_and_check

DB_VAR = "TEXT_DIALOGUE"


def _load(path: Path) -> List[dict]:
    if path.suffix == ".jsonl":
        return [
            json.loads(line)
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    return json.loads(path.read_text(encoding="utf-8"))


def pairs(items: List[dict]) -> Iterator[Tuple[str, str, str]]:
    """Yield ``(id, question, reply)`` from Alpaca or ShareGPT items."""
    for i, item in enumerate(items):
        if "conversations" in item:
            turns = item["conversations"]
            for j in range(len(turns) - 1):
                if turns[j]["from"] == "human" and turns[j + 1]["from"] == "gpt":
                    yield f"{item.get('id', i)}_{j}", turns[j]["value"], turns[j + 1]["value"]
        elif "instruction" in item and "output" in item:
            question = item["instruction"] + (" " + item["input"] if item.get("input") else "")
            yield str(i), question, item["output"]
        else:
            raise ValueError(
                f"item {i}: neither Alpaca (instruction/output) nor ShareGPT (conversations)"
            )


def prepare(path: Path, prefix: str) -> Utts:
    """One sample per question/reply pair; empty ones are skipped."""
    utts: Utts = {}
    empty = 0
    for key, question, reply in pairs(_load(path)):
        question, reply = one_line(question), one_line(reply)
        if question and reply:
            utt = f"{prefix}-{''.join(c if c.isalnum() else '_' for c in key)}"
            utts[utt] = {"task": "<TEXT2TEXT>", "question": question, "reply": reply}
        else:
            empty += 1
    report_skipped(str(path), empty, "empty question or reply")
    return utts


def main(argv=None) -> None:
    """Command-line entry."""
    parser = get_parser(__doc__, DB_VAR)
    parser.add_argument("--file", default="alpaca_data.json")
    parser.add_argument("--name", default="t2t", help="data dir name and utterance-id prefix")
    parser.add_argument("--role", default="train", choices=ROLES)
    args = parse_args(parser, DB_VAR, argv)
    data = prepare(args.db_root / args.file, args.name)
    write_and_check(args.out_dir / args.name, data, args.role)


if __name__ == "__main__":
    main()
