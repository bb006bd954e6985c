"""A short version of ``benchmarks/web_demo_load.py``: a few clients on loopback get only
correct answers (compared with the Python API's), none refused as busy."""

import pytest

pytest.importorskip("gradio_client")
pytestmark = pytest.mark.reference


def test_demo_under_concurrent_clients(converted_dir):
    from benchmarks.web_demo_load import run_load

    result = run_load(str(converted_dir), clients=3, duration_s=4.0)
    answers = result["answers"]
    assert answers["ok"] >= 3 and answers["wrong"] == answers["busy"] == answers["error"] == 0, result
    assert result["admission_peak"] <= 3
    assert result["heap_trims"] >= 1  # the server hands freed native memory back


def test_heap_trimmer_trims_at_most_once_per_interval():
    from espnet2_echat.inference.native_heap import HeapTrimmer

    heap = HeapTrimmer(interval_s=3600)
    assert heap.available  # glibc (this project's Linux images)
    assert heap.maybe_trim() and not heap.maybe_trim() and heap.trims == 1
    heap.interval_s = 0
    assert heap.maybe_trim() and heap.trims == 2
