"""Attach a token2wav model to decoding: offline per reply, or streamed while decoding.

``Token2WavInference.stream`` *pulls* token pieces from an iterable, while the decoder
*pushes* pieces as it generates them; :class:`BackgroundVoice` joins the two with a
thread and two queues. Two ways to share the CPU:

* overlapped (``synthesis_nthreads`` > 0): ``push`` returns at once; the synthesiser works on
  its own thread with its own torch thread budget while decoding goes on with the rest, and
  takes every thread of the caller once decoding has ended. Audio is the same as without
  overlap (the same chunks of the same tokens); only where its chunks appear among the
  stream's events depends on timing.
* paused (``synthesis_nthreads`` = 0): each push waits until the synthesiser has used the
  piece (and made whatever audio it allows), so decoding pauses while a chunk is
  synthesised with all the threads, and audio appears in the same place of the stream on
  every run.
"""

import queue
import threading
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Union

import numpy as np
import torch

from espnet2_echat.data.speech_ids import SpeechIds
from espnet2_echat.inference.threads import use_threads
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


_DONE = object()  # the synthesiser's last item


class _Cancelled(Exception):
    """The stream was closed before the reply ended."""


class BackgroundVoice:
    """Streams audio for speech-token pieces pushed from the decoding loop.

    Args:
        voice: The token2wav.
        synthesis_nthreads: torch threads of the synthesiser while decoding runs beside it;
            0: no overlap (``push`` waits, the synthesiser uses ``nthreads``).
        nthreads: The caller's torch threads: the synthesiser's once decoding has ended
            (or always, without overlap). Default: the creating thread's number.

    With overlap the split follows the work: the synthesiser takes every thread from its
    next flow step on once the input is closed (a forward pre-hook on the flow estimator,
    acting in the synthesiser's thread only), and :meth:`decoding_nthreads` tells the
    decoder to use every thread while no chunk is being synthesised (the prompt, the text
    and the first chunk's tokens) and the rest of them while one is.
    """

    def __init__(
        self,
        voice: Token2WavInference,
        synthesis_nthreads: int = 0,
        nthreads: Optional[int] = None,
    ):
        if synthesis_nthreads < 0:
            raise ValueError(f"synthesis_nthreads must be >= 0, got {synthesis_nthreads}")
        self.overlap = synthesis_nthreads > 0
        self._nthreads = nthreads or torch.get_num_threads()
        self._decoding_nthreads = max(1, self._nthreads - synthesis_nthreads)
        self._input_closed = threading.Event()
        self._pieces: "queue.Queue[Optional[List[int]]]" = queue.Queue()
        self._audio: "queue.Queue[Union[np.ndarray, BaseException, object]]" = queue.Queue()
        self._idle = threading.Event()  # the synthesiser waits for the next piece
        self._cancelled = threading.Event()
        self._done = False  # the consumer has seen the synthesiser's end
        self._thread = threading.Thread(
            target=self._run,
            args=(voice, synthesis_nthreads if self.overlap else self._nthreads),
            name="echat-voice",
            daemon=True,
        )
        self._thread.start()

    def _source(self) -> Iterator[List[int]]:
        while True:
            self._idle.set()
            piece = self._pieces.get()
            if self._cancelled.is_set():
                raise _Cancelled  # not `return`: that would synthesise a final chunk
            if piece is None:
                use_threads(self._nthreads)  # decoding has ended: every thread for the rest
                return
            yield piece

    def decoding_nthreads(self) -> int:
        """torch threads for the decoder's next step (see the class doc)."""
        if self.overlap and not self._idle.is_set():
            return self._decoding_nthreads
        return self._nthreads

    def _on_flow_step(self, module, args) -> None:
        """Estimator pre-hook: every thread to the synthesiser once decoding has ended."""
        if self._input_closed.is_set() and threading.current_thread() is self._thread:
            if torch.get_num_threads() != self._nthreads:
                torch.set_num_threads(self._nthreads)

    def _run(self, voice: Token2WavInference, nthreads: int) -> None:
        use_threads(nthreads)
        hook = None
        model = getattr(voice, "model", None)
        if self.overlap and model is not None:
            hook = model.flow.decoder.estimator.register_forward_pre_hook(self._on_flow_step)
        try:
            for chunk in voice.stream(self._source()):
                if self._cancelled.is_set():
                    return
                self._audio.put(chunk)
        except _Cancelled:
            pass
        except BaseException as e:  # handed to the consumer, raised there
            self._audio.put(e)
        finally:
            if hook is not None:
                hook.remove()
            torch.set_num_threads(self._nthreads)  # threads started later default to it
            self._audio.put(_DONE)
            self._idle.set()

    def push(self, tokens: Sequence[int]) -> None:
        """Hand a piece to the synthesiser; without overlap, wait until it asks for the next."""
        self._idle.clear()
        self._pieces.put(list(tokens))
        if self.overlap:
            if not self._thread.is_alive():
                self._stopped()
            return
        while not self._idle.wait(0.05):
            if not self._thread.is_alive():
                self._stopped()

    def _stopped(self) -> None:
        self.ready()  # raises the synthesiser's error
        raise RuntimeError("the token2wav synthesiser stopped before the reply ended")

    def ready(self) -> List[np.ndarray]:
        """Audio chunks finished so far (does not wait)."""
        chunks = []
        while not self._done and not self._audio.empty():
            chunk = self._take(self._audio.get())
            if chunk is not None:
                chunks.append(chunk)
        return chunks

    def _take(self, item) -> Optional[np.ndarray]:
        """A chunk from the audio queue; None at the end; the synthesiser's error raised."""
        if item is _DONE:
            self._done = True
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop the synthesiser (pieces not yet synthesised are dropped) and wait for its
        thread to end: at most the chunk in progress, so no thread outlives the stream."""
        self._cancelled.set()
        self._input_closed.set()
        self._pieces.put(None)
        self._thread.join()

    def finish(self) -> Iterator[np.ndarray]:
        """Close the input; yield the remaining chunks as the synthesiser makes them."""
        self._input_closed.set()
        self._pieces.put(None)
        while not self._done:
            chunk = self._take(self._audio.get())
            if chunk is not None:
                yield chunk
        self._thread.join()
