from tests.models.conftest import converted_dir, expected  # noqa: F401  (shared fixtures)
