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
