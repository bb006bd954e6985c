"""The bad-input and fault suite uses the shared fixtures of ``tests/conftest.py`` (the
tiny converted model) and ``tests/inference/conftest.py`` (a ready Speech2Response)."""

from tests.inference.conftest import fixed_s2r, wavs  # noqa: F401  (shared fixtures)
