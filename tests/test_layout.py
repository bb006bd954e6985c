"""The test tree mirrors the package: each test folder names a package folder (the recipe's
tests sit in ``tests/recipe``), fixtures shared between folders live in ``tests/conftest.py``
and no test module imports a conftest."""

import ast

from tests.helpers import REPO_ROOT

TESTS = REPO_ROOT / "tests"
PACKAGE = REPO_ROOT / "espnet2_echat"
NOT_PACKAGE = {"recipe": "egs2/echat/echat1"}  # test folders of what is not the package


def test_every_test_folder_mirrors_a_package_folder():
    for folder in sorted(p for p in TESTS.rglob("*") if p.is_dir() and p.name != "__pycache__"):
        rel = folder.relative_to(TESTS)
        if rel.parts[0] in NOT_PACKAGE:
            assert (REPO_ROOT / NOT_PACKAGE[rel.parts[0]]).is_dir()
            continue
        assert (PACKAGE / rel).is_dir(), f"tests/{rel} has no espnet2_echat/{rel} to mirror"
        assert (folder / "__init__.py").is_file(), f"tests/{rel} is not a package"


def test_no_module_imports_a_conftest():
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            assert not any("conftest" in n for n in names), f"{path} imports a conftest"
