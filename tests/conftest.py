"""Shared pytest fixtures (plain helpers are in ``tests/helpers.py``).

Golden outputs of the reference code live in the folder named by ``ECHAT_REF_FIXTURES``
(default: ``../shared/fixtures`` resolved from the repository root). Tests that need them
carry the ``reference`` marker and skip with one clear line when the folder is absent.
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import load_wav, reference_fixtures_dir


def _require(name: str) -> Path:
    path = reference_fixtures_dir() / name
    if not path.is_dir():
        pytest.skip(
            f"golden outputs not found at {path}; set ECHAT_REF_FIXTURES to the folder "
            f"holding {name}/ to run the reference equivalence tests"
        )
    return path


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory, request):
    """``make(name)``: a folder that lives as long as the test module.

    Removed when the module's tests are done and none of them failed, like the per-test
    ``tmp_path`` under ``tmp_path_retention_policy = failed`` (pytest.ini): the suite's
    trainings, recipes and checkpoints would otherwise fill several GB of /tmp by its end.
    """
    made = []
    failed_before = request.session.testsfailed

    def make(name: str) -> Path:
        made.append(tmp_path_factory.mktemp(name))
        return made[-1]

    yield make
    if request.session.testsfailed == failed_before:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def osum_tiny_dir() -> Path:
    """The reference's tiny speech-LLM golden set."""
    return _require("osum_echat_tiny")


@pytest.fixture(scope="session")
def token2wav_tiny_dir() -> Path:
    """The reference's tiny token2wav golden set."""
    return _require("token2wav_tiny")


@pytest.fixture(scope="session")
def expected(osum_tiny_dir):
    """The speech-LLM golden set's ``expected.json``."""
    with open(osum_tiny_dir / "expected.json", encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def converted_dir(osum_tiny_dir, tmp_path_factory):
    """The golden set's tiny checkpoint converted once per session (config.yaml + model.pth)."""
    from espnet2_echat.convert.osum_echat import convert_osum_echat

    out = tmp_path_factory.mktemp("converted_tiny")
    convert_osum_echat(
        str(osum_tiny_dir / "model.pt"),
        str(osum_tiny_dir / "config.yaml"),
        str(osum_tiny_dir / "llm"),
        str(out),
    )
    return out


@pytest.fixture(scope="session")
def tiny_model(converted_dir):
    """The converted tiny checkpoint as an ESPnet model in eval mode."""
    from espnet2_echat.tasks.echat import EChatTask

    model, _ = EChatTask.build_model_from_file(
        converted_dir / "config.yaml", converted_dir / "model.pth"
    )
    return model.eval()


@pytest.fixture(scope="session")
def compat_s2r(converted_dir):
    """Speech2Response in reference_compat mode (the fixture's prompts and parsing)."""
    from espnet2_echat.inference import Speech2Response

    return Speech2Response(
        converted_dir / "config.yaml", converted_dir / "model.pth", reference_compat=True
    )


@pytest.fixture(scope="session")
def fixed_s2r(converted_dir):
    """Speech2Response with the reference's bugs fixed (the default)."""
    from espnet2_echat.inference import Speech2Response

    return Speech2Response(converted_dir / "config.yaml", converted_dir / "model.pth")


@pytest.fixture(scope="session")
def wavs(osum_tiny_dir, expected):
    """The golden set's utterances as float32 16 kHz tensors."""
    return [load_wav(osum_tiny_dir, utt) for utt in expected["utterances"]]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ``ECHAT_FAIL_ON_REFERENCE_SKIP`` (set by .ci/run) a skipped ``reference`` test fails:
    CI must compare with the golden outputs, never silently pass without them."""
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and item.get_closest_marker("reference") is not None
        and os.environ.get("ECHAT_FAIL_ON_REFERENCE_SKIP")
    ):
        report.outcome = "failed"
        report.longrepr = f"reference test skipped under ECHAT_FAIL_ON_REFERENCE_SKIP: {report.longrepr}"
