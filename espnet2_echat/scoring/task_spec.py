"""Which metrics a decoded set gets: from the data dir's task tag or ``--task``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Tuple

from espnet2_echat.data.task_registry import CHAT_KINDS, TASKS, scored_as


@dataclass(frozen=True)
class TaskSpec:
    """What to score.

    ``kind`` is ``understanding``, ``s2t_chat``, ``s2s``, ``t2t`` or ``tts``; understanding
    tasks score the transcript (``transcribe``) and/or paralinguistic ``labels``.
    """

    name: str
    kind: str
    transcribe: bool = False
    labels: Tuple[str, ...] = ()


# The decoding CLI's --task names (``data.task_registry.TASKS``).
CLI_TASKS: Mapping[str, TaskSpec] = {
    t.name: TaskSpec(t.name, t.kind, t.transcribe, (t.label,) if t.label else ())
    for t in TASKS.values()
}


def spec_from_tag(tag: str) -> TaskSpec:
    """Map a reference task tag string (docs/tasks.md#decoding-tasks), e.g.
    ``<S2TCHAT> <TEXT2TOKEN> <THINK>``."""
    scored = scored_as(tag)
    if scored.task != "understanding":
        return CLI_TASKS[scored.task]
    transcribe, labels = scored.transcribe, scored.labels
    if not transcribe and len(labels) == 1:
        return CLI_TASKS.get(
            labels[0], TaskSpec(labels[0], "understanding", labels=labels)
        )
    name = "+".join((["asr"] if transcribe else []) + list(labels))
    return TaskSpec(name, "understanding", transcribe=transcribe, labels=labels)


def resolve_task(
    task_file: Optional[Mapping[str, str]],
    utts: Iterable[str],
    cli_task: Optional[str] = None,
) -> TaskSpec:
    """The task of a set: ``cli_task`` if given, else the one tag all utterances share.

    Raises:
        ValueError: unknown ``cli_task``; no task file; or utterances with different tags.
    """
    if cli_task:
        if cli_task not in CLI_TASKS:
            raise ValueError(
                f"--task {cli_task!r}: expected one of {' '.join(CLI_TASKS)}"
            )
        return CLI_TASKS[cli_task]
    if not task_file:
        raise ValueError("the data dir has no `task` file; pass --task")
    first = None
    for utt in utts:
        if utt not in task_file:
            raise ValueError(f"task: no task tag for utterance {utt}")
        if first is None:
            first = (utt, task_file[utt])
        elif task_file[utt] != first[1]:
            raise ValueError(
                f"task: utterance {utt} has {task_file[utt]!r} but {first[0]} has {first[1]!r}; "
                "score one task per data dir or pass --task"
            )
    return spec_from_tag(first[1])
