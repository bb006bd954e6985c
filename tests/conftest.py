"""Shared pytest fixtures.

Golden outputs of the reference code live in the folder named by ``ECHAT_REF_FIXTURES``
(default: ``../shared/fixtures`` resolved from the repository root). Tests that need them
carry the ``reference`` marker and skip with one clear line when the folder is absent.
"""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def reference_fixtures_dir() -> Path:
    """Return the folder holding ``osum_echat_tiny/`` and ``token2wav_tiny/``."""
    env = os.environ.get("ECHAT_REF_FIXTURES")
    if env:
        return Path(env).resolve()
    return (REPO_ROOT / ".." / "shared" / "fixtures").resolve()


def _require(name: str) -> Path:
    path = reference_fixtures_dir() / name
    if not path.is_dir():
        pytest.skip(
            f"golden outputs not found at {path}; set ECHAT_REF_FIXTURES to the folder "
            f"holding {name}/ to run the reference equivalence tests"
        )
    return path


@pytest.fixture(scope="session")
def osum_tiny_dir() -> Path:
    """The reference's tiny speech-LLM golden set."""
    return _require("osum_echat_tiny")


@pytest.fixture(scope="session")
def token2wav_tiny_dir() -> Path:
    """The reference's tiny token2wav golden set."""
    return _require("token2wav_tiny")


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
