"""What a data dir is for, read from its own files (never from its name).

* the training stage that uses it: 3 (empathy) when its task tags ask for a CoT
  (``<THINK>``/``<THINKER>``), 2 (generation) for TTS, S2T/S2S chat, T2T and multi-turn
  sets, 1 (understanding) otherwise;
* whether ``extract_speech_tokens`` gives it speech tokens: its tasks produce speech
  (TTS, S2S) and every such utterance has audio to tokenise (a TTS test set whose
  references are partly missing, as Seed-TTS-eval's, decodes from text without them);
* its CoT style, ``tag`` (the label-based think of docs/labels.md#tag-think, recognised by its fixed
  field names) or ``language``, and ``none`` without CoT;
* the decoding tasks (``echat_inference --task``) that score it: one per paralinguistic
  label and/or ``asr`` for understanding tags (``<TRANSCRIBE> <EMOTION>`` -> ``asr
  emotion``), else the one chat/TTS task (:func:`espnet2_echat.data.task_registry.scored_as`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

from espnet2_echat.data.datadir import read_kaldi_map
from espnet2_echat.data.task_registry import GENERATION_TAG_WORDS, THINK_TAG_WORDS, scored_as

TAG_THINK_PREFIX = "用户说的话是:"


@dataclass(frozen=True)
class SetInfo:
    """What one data dir is for (see the module docstring)."""

    name: str
    stage: int
    speech_tokens: bool
    think: str
    decode_tasks: Tuple[str, ...]

    def line(self) -> str:
        """``name stage speech_tokens think task[,task]`` for the recipe's shell."""
        tokens = "yes" if self.speech_tokens else "no"
        return f"{self.name} {self.stage} {tokens} {self.think} {','.join(self.decode_tasks)}"


def set_info(data_dir: Path) -> SetInfo:
    """Read ``task`` (and ``think``) of a data dir; fails naming the dir if it has none."""
    data_dir = Path(data_dir)
    if not (data_dir / "task").is_file():
        raise FileNotFoundError(f"{data_dir}: no task file (not a data dir?)")
    task_file = read_kaldi_map(data_dir / "task")
    tags = set(task_file.values())
    if not tags:
        raise ValueError(f"{data_dir}/task: empty")
    words = {w for t in tags for w in t.split()}
    if words & set(THINK_TAG_WORDS):
        stage = 3
    elif words & set(GENERATION_TAG_WORDS):
        stage = 2
    else:
        stage = 1
    needs = [u for u, t in task_file.items() if "<TEXT2TOKEN>" in t.split() or "<Speech2TEXTandTOKEN>" in t]
    sources = set()
    for name in ("wav.scp", "reply_wav.scp"):
        if (data_dir / name).is_file():
            sources |= set(read_kaldi_map(data_dir / name))
    speech = bool(needs) and all(u in sources for u in needs)
    think = "none"
    if stage == 3:
        thinks = read_kaldi_map(data_dir / "think").values() if (data_dir / "think").is_file() else []
        think = "tag" if thinks and all(v.startswith(TAG_THINK_PREFIX) for v in thinks) else "language"
    decode = []
    for tag in sorted(tags):
        decode += [n for n in scored_as(tag).decode_tasks if n not in decode]
    return SetInfo(data_dir.name, stage, speech, think, tuple(dict.fromkeys(decode)))
