"""Fixtures of the bad-input and fault suite: the tiny converted model (``converted_dir``,
``expected``) comes from the shared ``tests/conftest.py``."""
