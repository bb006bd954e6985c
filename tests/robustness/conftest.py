"""Fixtures of the bad-input and fault suite: the tiny converted model (shared with the
model tests) and small builders of hostile files."""

from tests.models.conftest import converted_dir, expected  # noqa: F401  (shared fixtures)
