"""Decoding of OSUM-EChat models: the ``Speech2Response`` API, batch decoding, streaming.

The names below are imported on first use (PEP 562), so that importing a light module of
this package (``inference.threads``, ``inference.request_limits``: what the CLIs' parsers
need) does not import torch and transformers.
"""

from importlib import import_module
from typing import Any

_WHERE = {
    "Conversation": "espnet2_echat.inference.conversation",
    "Turn": "espnet2_echat.inference.conversation",
    "DecodingOptions": "espnet2_echat.inference.settings",
    "Request": "espnet2_echat.inference.speech2response",
    "Response": "espnet2_echat.inference.speech2response",
    "Speech2Response": "espnet2_echat.inference.speech2response",
    "StreamChunk": "espnet2_echat.inference.speech2response",
}
_REGISTRY = {"TASKS": "TASK_NAMES", "THINK_MODES": "THINK_MODES"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    if name in _REGISTRY:
        return getattr(import_module("espnet2_echat.data.task_registry"), _REGISTRY[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted([*_WHERE, *_REGISTRY])
