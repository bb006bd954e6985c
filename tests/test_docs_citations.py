"""Comments cite the documentation in the repository, and every page and section they cite exists.

Code, tests, the recipe, configs and benchmarks must not cite documents that ship outside the
repository (the specification's section numbers, the design notes); they cite
``docs/<page>.md`` or ``docs/<page>.md#<section>``, where ``<section>`` is a heading's GitHub
anchor.
"""

import re
from pathlib import Path

from tests.helpers import REPO_ROOT

SCANNED = ("espnet2_echat", "egs2", "benchmarks", "tests", "local", "conf")
SUFFIXES = {".py", ".sh", ".yaml"}
# "spec N.N" also when a comment or docstring wraps between the word and the number
OUTSIDE = re.compile(r"\bspec\s+(#\s*)?\d+(\.\d+)*|" + "DES" + "IGN")  # split: stays clean
CITED = re.compile(r"docs/([A-Za-z0-9_]+\.md)(#[a-z0-9-]+)?")


PAGES = ("README.md", "SECURITY.md")  # the repository's own pages, and docs/*.md


def _files():
    for top in SCANNED:
        for path in sorted((REPO_ROOT / top).rglob("*")):
            if path.suffix in SUFFIXES and path.is_file() and ".venv" not in path.parts:
                yield path
    yield from (REPO_ROOT / page for page in PAGES)
    yield from sorted((REPO_ROOT / "docs").glob("*.md"))


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces -> '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set:
    headings = [ln.lstrip("#").strip() for ln in page.read_text().splitlines() if ln.startswith("#")]
    return {github_anchor(h) for h in headings}


def test_github_anchor():
    assert github_anchor("LLM and LoRA") == "llm-and-lora"
    assert github_anchor("Decoding tasks (`--task`)") == "decoding-tasks---task"


def test_no_citation_of_documents_outside_the_repository():
    found = []
    for path in _files():
        text = path.read_text(errors="replace")
        for match in OUTSIDE.finditer(text):
            n = text.count("\n", 0, match.start()) + 1
            found.append(f"{path.relative_to(REPO_ROOT)}:{n}: {match.group(0)!r}")
    assert not found, "cite docs/<page>.md instead:\n" + "\n".join(found)


def test_every_cited_docs_page_and_section_exists():
    docs, anchors, missing, cited = REPO_ROOT / "docs", {}, [], 0
    for path in _files():
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for page, anchor in CITED.findall(line):
                cited += 1
                where = f"{path.relative_to(REPO_ROOT)}:{n}"
                if not (docs / page).is_file():
                    missing.append(f"{where}: docs/{page} does not exist")
                elif anchor and anchor[1:] not in anchors.setdefault(page, _anchors(docs / page)):
                    missing.append(f"{where}: docs/{page} has no section {anchor}")
    assert cited > 50 and not missing, "\n".join(missing)
