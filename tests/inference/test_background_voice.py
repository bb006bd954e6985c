"""BackgroundVoice: synthesis beside decoding (overlap), its thread budget, early close."""

import threading

import numpy as np
import pytest
import torch

from espnet2_echat.inference.threads import split_threads, use_threads, with_threads
from espnet2_echat.inference.voice import BackgroundVoice


class SlowVoice:
    """A stand-in token2wav: one chunk a piece, each held until ``release`` is set; records
    the torch threads of the synthesising thread at every chunk."""

    def __init__(self):
        self.release = threading.Event()
        self.threads = []
        self.pieces = []

    def stream(self, pieces):
        for piece in pieces:
            self.release.wait(10)
            self.threads.append(torch.get_num_threads())
            self.pieces.append(piece)
            yield np.full(len(piece), float(piece[0]), dtype=np.float32)
        self.threads.append(torch.get_num_threads())
        yield np.zeros(1, dtype=np.float32)


def test_overlapped_push_returns_while_the_chunk_is_synthesised():
    voice = SlowVoice()
    bg = BackgroundVoice(voice, synthesis_nthreads=1, nthreads=2)
    try:
        bg.push([1, 2])
        bg.push([3])  # the synthesiser still holds the first piece: decoding goes on
        assert voice.pieces == [] and bg.ready() == []
        voice.release.set()
        chunks = bg.finish()
    finally:
        bg.close()
    assert [c.tolist() for c in chunks] == [[1.0, 1.0], [3.0], [0.0]]
    assert voice.pieces == [[1, 2], [3]]
    # 1 thread beside decoding; all the caller's 2 once the input closed
    assert voice.threads[:2] == [1, 1] and voice.threads[-1] == 2


def test_paused_push_waits_for_the_synthesiser():
    voice = SlowVoice()
    bg = BackgroundVoice(voice, synthesis_nthreads=0, nthreads=1)
    timer = threading.Timer(0.3, voice.release.set)
    timer.start()
    try:
        bg.push([5])
        assert voice.pieces == [[5]]  # push came back only after the piece was used
        assert [c.tolist() for c in bg.ready()] == [[5.0]]
    finally:
        voice.release.set()
        bg.close()
        timer.cancel()


def test_close_drops_queued_pieces_and_ends_the_thread():
    voice = SlowVoice()
    bg = BackgroundVoice(voice, synthesis_nthreads=1, nthreads=1)
    for i in range(5):
        bg.push([i])
    threading.Timer(0.2, voice.release.set).start()
    bg.close()
    assert not bg._thread.is_alive()
    assert len(voice.pieces) <= 1  # the piece in progress at most; no final chunk
    assert len(voice.threads) == len(voice.pieces)


def test_synthesiser_errors_reach_the_decoder():
    class Broken:
        def stream(self, pieces):
            for _ in pieces:
                raise ValueError("bad tokens")
            yield  # pragma: no cover

    bg = BackgroundVoice(Broken(), synthesis_nthreads=1, nthreads=1)
    bg.push([1])
    with pytest.raises(ValueError, match="bad tokens"):
        bg.finish()


def test_split_threads():
    assert split_threads(2) == (1, 1)
    assert split_threads(1) == (1, 0)
    assert split_threads(4) == (2, 2)
    assert split_threads(3, 2) == (1, 2)
    assert split_threads(2, 0) == (2, 0)
    with pytest.raises(ValueError, match="synthesis threads must be >= 0, got -1"):
        split_threads(2, -1)


def test_with_threads_sets_the_pulling_thread_and_restores_it():
    before = torch.get_num_threads()
    seen = []

    def items():
        for i in range(3):
            seen.append(torch.get_num_threads())
            yield i

    try:
        use_threads(2)
        between = []
        for _ in with_threads(items(), 1):
            between.append(torch.get_num_threads())
        assert seen == [1, 1, 1] and between == [2, 2, 2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
