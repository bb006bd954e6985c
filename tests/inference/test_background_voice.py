"""BackgroundVoice: synthesis beside decoding (overlap), its thread budget, early close."""

import threading

import numpy as np
import pytest
import torch

from espnet2_echat.inference.threads import synthesis_threads, use_threads, with_threads
from espnet2_echat.inference.voice import BackgroundVoice


class SlowVoice:
    """A stand-in token2wav: one chunk a piece, each held until ``release`` lets it go;
    records the torch threads of the synthesising thread at every chunk."""

    def __init__(self):
        self.release = threading.Semaphore(0)
        self.threads = []
        self.pieces = []

    def let_all_go(self):
        self.release.release(100)

    def stream(self, pieces):
        for piece in pieces:
            self.release.acquire(timeout=10)
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
        voice.let_all_go()
        chunks = list(bg.finish())
    finally:
        bg.close()
    assert [c.tolist() for c in chunks] == [[1.0, 1.0], [3.0], [0.0]]
    assert voice.pieces == [[1, 2], [3]]
    # 1 thread beside decoding; all the caller's 2 once the input closed
    assert voice.threads[:2] == [1, 1] and voice.threads[-1] == 2


def test_paused_push_waits_for_the_synthesiser():
    voice = SlowVoice()
    bg = BackgroundVoice(voice, synthesis_nthreads=0, nthreads=1)
    timer = threading.Timer(0.3, voice.let_all_go)
    timer.start()
    try:
        bg.push([5])
        assert voice.pieces == [[5]]  # push came back only after the piece was used
        assert [c.tolist() for c in bg.ready()] == [[5.0]]
    finally:
        voice.let_all_go()
        bg.close()
        timer.cancel()


def test_close_drops_queued_pieces_and_ends_the_thread():
    voice = SlowVoice()
    bg = BackgroundVoice(voice, synthesis_nthreads=1, nthreads=1)
    for i in range(5):
        bg.push([i])
    threading.Timer(0.2, voice.let_all_go).start()
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
        list(bg.finish())


def test_finish_yields_each_chunk_when_it_is_made():
    """After decoding ends the rest of the audio still streams chunk by chunk."""
    voice = SlowVoice()
    bg = BackgroundVoice(voice, synthesis_nthreads=1, nthreads=1)
    try:
        bg.push([1])
        bg.push([2])
        voice.release.release()  # the first chunk only
        rest = bg.finish()
        assert next(rest).tolist() == [1.0]
        assert voice.pieces == [[1]]  # the second is still being made
        voice.let_all_go()
        assert [c.tolist() for c in rest] == [[2.0], [0.0]]
    finally:
        voice.let_all_go()
        bg.close()


def test_default_split_of_threads():
    assert [synthesis_threads(n) for n in (1, 2, 4)] == [0, 0, 0]  # measured: no overlap
    assert synthesis_threads(2, 1) == 1 and synthesis_threads(3, 2) == 2
    with pytest.raises(ValueError, match="synthesis threads must be >= 0, got -1"):
        synthesis_threads(2, -1)


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


class _Estimator(torch.nn.Module):
    """Records the torch threads of every call, then waits for a go."""

    def __init__(self):
        super().__init__()
        self.threads = []
        self.go = threading.Semaphore(0)

    def forward(self, x):
        self.threads.append(torch.get_num_threads())
        self.go.acquire(timeout=10)
        return x


class FlowVoice:
    """A stand-in token2wav whose chunks run two steps of ``model.flow.decoder.estimator``."""

    def __init__(self):
        estimator = _Estimator()
        decoder = type("D", (), {"estimator": estimator})()
        self.model = type("M", (), {"flow": type("F", (), {"decoder": decoder})()})()
        self.estimator = estimator

    def stream(self, pieces):
        for piece in pieces:
            for _ in range(2):
                self.estimator(torch.zeros(1))
            yield np.zeros(len(piece), dtype=np.float32)


def test_threads_follow_the_work():
    """Decoding takes every thread while no chunk is being made; the synthesiser takes every
    thread from its next flow step once decoding has ended, also within a chunk."""
    voice = FlowVoice()
    bg = BackgroundVoice(voice, synthesis_nthreads=1, nthreads=2)
    try:
        assert bg.decoding_nthreads() == 2  # nothing to synthesise yet
        bg.push([1, 2])
        assert bg.decoding_nthreads() == 1  # a chunk is being made beside decoding
        while len(voice.estimator.threads) < 1:  # the first step, decoding still running
            threading.Event().wait(0.01)
        rest = bg.finish()  # decoding has ended mid-chunk
        voice.estimator.go.release(10)
        assert len(list(rest)) == 1
    finally:
        voice.estimator.go.release(10)
        bg.close()
    assert voice.estimator.threads == [1, 2]
    assert not voice.estimator._forward_pre_hooks  # the hook left with the stream
