"""Attach a token2wav model to decoding: offline per reply, or streamed while decoding.

``Token2WavInference.stream`` *pulls* token pieces from an iterable, while the decoder
*pushes* pieces as it generates them; :class:`BackgroundVoice` joins the two with a
thread and two queues. Each push waits until the synthesiser has used the piece (and made
whatever audio it allows), so audio comes out as early as the token2wav permits, before the
reply is finished, in the same place of the stream on every run.
"""

import queue
import threading
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Union

import numpy as np

from espnet2_echat.data.speech_ids import SpeechIds
from espnet2_echat.inference.token2wav import Token2WavInference


def load_voice(
    train_config: Optional[Union[str, Path]],
    model_file: Optional[Union[str, Path]],
    device: str,
    speech_ids: SpeechIds,
    **options,
) -> Token2WavInference:
    """The token2wav model, checked against the LLM's speech vocabulary (K ids);
    ``options`` go to :class:`Token2WavInference` (``matmul_dtype``, ``first_token_hop_len``)."""
    if train_config is None or model_file is None:
        raise ValueError(
            "a token2wav model needs both token2wav_train_config and token2wav_model_file "
            f"(got {train_config!r}, {model_file!r})"
        )
    voice = Token2WavInference(train_config, model_file, device=device, **options)
    vocab = voice.model.flow.vocab_size
    if vocab != speech_ids.num_tokens:
        raise ValueError(
            f"{model_file}: the token2wav model reads {vocab} speech tokens but the speech LLM "
            f"writes {speech_ids.num_tokens}"
        )
    return voice


class BackgroundVoice:
    """Streams audio for speech-token pieces pushed from the decoding loop."""

    def __init__(self, voice: Token2WavInference):
        self._pieces: "queue.Queue[Optional[List[int]]]" = queue.Queue()
        self._audio: "queue.Queue[Union[np.ndarray, BaseException]]" = queue.Queue()
        self._idle = threading.Event()  # the synthesiser waits for the next piece
        self._thread = threading.Thread(target=self._run, args=(voice,), daemon=True)
        self._thread.start()

    def _source(self) -> Iterator[List[int]]:
        while True:
            self._idle.set()
            piece = self._pieces.get()
            if piece is None:
                return
            yield piece

    def _run(self, voice: Token2WavInference) -> None:
        try:
            for chunk in voice.stream(self._source()):
                self._audio.put(chunk)
        except BaseException as e:  # handed to the consumer, raised there
            self._audio.put(e)
        finally:
            self._idle.set()

    def push(self, tokens: Sequence[int]) -> None:
        """Hand a piece to the synthesiser and wait until it asks for the next one."""
        self._idle.clear()
        self._pieces.put(list(tokens))
        while not self._idle.wait(0.05):
            if not self._thread.is_alive():
                self.ready()  # raises the synthesiser's error
                raise RuntimeError("the token2wav synthesiser stopped before the reply ended")

    def ready(self) -> List[np.ndarray]:
        """Audio chunks finished so far (does not wait)."""
        chunks = []
        while not self._audio.empty():
            item = self._audio.get()
            if isinstance(item, BaseException):
                raise item
            chunks.append(item)
        return chunks

    def close(self) -> None:
        """Let the synthesiser thread end without waiting for it."""
        self._pieces.put(None)

    def finish(self) -> List[np.ndarray]:
        """Close the input, wait for the synthesiser and return the remaining chunks."""
        self._pieces.put(None)
        self._thread.join()
        return self.ready()
