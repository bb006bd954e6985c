"""Decoding of OSUM-EChat models: the ``Speech2Response`` API, batch decoding, streaming."""

from espnet2_echat.inference.conversation import Conversation, Turn
from espnet2_echat.data.task_registry import TASK_NAMES as TASKS
from espnet2_echat.data.task_registry import THINK_MODES
from espnet2_echat.inference.settings import DecodingOptions
from espnet2_echat.inference.speech2response import Request, Response, Speech2Response, StreamChunk

__all__ = [
    "Conversation",
    "DecodingOptions",
    "Request",
    "Response",
    "Speech2Response",
    "StreamChunk",
    "TASKS",
    "THINK_MODES",
    "Turn",
]
