"""The speech-id scheme of OSUM-EChat, built once from the config (``docs/model.md``).

With K speech tokens (4096 in the released model) and a text vocabulary of V ids:

* speech-table ids: ``0 .. K-1`` speech tokens, ``K`` the begin/end-of-speech marker,
  ``K+1`` / ``K+2`` the audio-input begin/end markers (the table has K+3 rows);
* the speech head predicts ``0 .. K`` (tokens and the marker): ``speech_token_num`` = K+1,
  the config's name for it;
* the joint space of the LLM: text ids ``0 .. V-1``, speech-table id ``k`` is ``V + k``;
  training's one softmax is over ``V + K + 1`` classes.

Every module that needs one of these numbers asks this object; none adds or subtracts 1
itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List

RELEASED_SPEECH_TOKENS = 4096  # K of the released model (CosyVoice's 25 Hz tokenizer)
QWEN25_TEXT_VOCAB = 151936  # V of Qwen2.5 (rows of its output embedding)


@dataclass(frozen=True)
class SpeechIds:
    """Speech and joint id numbers for K speech tokens and V text ids.

    Attributes:
        num_tokens: K, the speech tokens ``0 .. K-1``.
        text_vocab_size: V, the text ids ``0 .. V-1`` of the joint space.
    """

    num_tokens: int = RELEASED_SPEECH_TOKENS
    text_vocab_size: int = QWEN25_TEXT_VOCAB

    def __post_init__(self):
        if self.num_tokens < 1 or self.text_vocab_size < 1:
            raise ValueError(
                f"speech ids need K >= 1 speech tokens and V >= 1 text ids, got "
                f"K={self.num_tokens}, V={self.text_vocab_size}"
            )

    @classmethod
    def from_config(cls, speech_token_num: int, text_vocab_size: int = QWEN25_TEXT_VOCAB) -> "SpeechIds":
        """From the config's ``speech_token_num`` (K+1, the speech-head size)."""
        return cls(int(speech_token_num) - 1, int(text_vocab_size))

    # -- speech-table ids --------------------------------------------------------------
    @property
    def speech_token_num(self) -> int:
        """K+1: rows of the speech head (the tokens and the marker); the config's name."""
        return self.num_tokens + 1

    @property
    def marker(self) -> int:
        """K: the begin/end-of-speech marker."""
        return self.num_tokens

    @property
    def audio_bos(self) -> int:
        """K+1: the begin marker of an audio input."""
        return self.num_tokens + 1

    @property
    def audio_eos(self) -> int:
        """K+2: the end marker of an audio input."""
        return self.num_tokens + 2

    @property
    def table_size(self) -> int:
        """K+3: rows of the speech embedding table."""
        return self.num_tokens + 3

    # -- the joint space ---------------------------------------------------------------
    @property
    def joint_size(self) -> int:
        """V + K + 1: classes of the joint (text head ⊕ speech head) softmax."""
        return self.text_vocab_size + self.speech_token_num

    @property
    def joint_marker(self) -> int:
        """The marker as a joint id."""
        return self.joint(self.marker)

    def joint(self, speech_id: int) -> int:
        """A speech-table id as a joint id."""
        return self.text_vocab_size + int(speech_id)

    def joint_ids(self, speech_ids: Iterable[int]) -> List[int]:
        """Speech-table ids as joint ids."""
        return [self.text_vocab_size + int(i) for i in speech_ids]

    def is_speech(self, joint_id: int) -> bool:
        """A joint id of the speech table."""
        return joint_id >= self.text_vocab_size

    def speech_id(self, joint_id: int) -> int:
        """The speech-table id of a joint id (``is_speech`` must hold)."""
        return joint_id - self.text_vocab_size

    def speech_ids_of(self, joint_ids: Iterable[int]) -> List[int]:
        """The speech-table ids among ``joint_ids``, in order."""
        return [i - self.text_vocab_size for i in joint_ids if i >= self.text_vocab_size]
