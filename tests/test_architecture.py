"""The import directions of docs/architecture.md hold, and no two files import each other.

Every ``espnet2_echat`` import of every module is read with ``ast`` (imports inside functions
included), so a lazy import that breaks a direction is caught as well.
"""

import ast
from collections import defaultdict
from typing import Dict, List, Set

from tests.helpers import REPO_ROOT

PACKAGE = REPO_ROOT / "espnet2_echat"
# layer -> the layers it may import (docs/architecture.md#import-directions); bin: anything
ALLOWED: Dict[str, Set[str]] = {
    "safety": set(),
    "progress": set(),
    "job_list": set(),
    "wheel_assets": {"safety"},
    "data": {"safety", "progress"},
    "models": {"data", "safety", "wheel_assets"},
    "train": {"data", "models", "safety", "progress"},
    "tasks": {"train", "data", "models", "safety", "convert"},
    "convert": {"tasks", "train", "data", "models", "safety", "wheel_assets"},
    "inference": {"tasks", "train", "data", "models", "safety", "progress", "job_list"},
    "scoring": {"inference", "data", "safety", "progress", "wheel_assets", "job_list"},
    "zoo": {"tasks", "data", "models", "safety"},
    "task_help": {"tasks"},
}


def _modules() -> Dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def _imports(modules: Dict[str, ast.Module]) -> Dict[str, Set[str]]:
    """module -> the package modules it imports (a package's own children left out)."""

    def resolve(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = defaultdict(set)
    for name, tree in modules.items():
        for node in ast.walk(tree):
            found = []
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("espnet2_echat"):
                found = [resolve(f"{node.module}.{a.name}") for a in node.names]
            elif isinstance(node, ast.Import):
                found = [resolve(a.name) for a in node.names if a.name.startswith("espnet2_echat")]
            graph[name].update(t for t in found if t and t != name and not t.startswith(name + "."))
    return graph


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _wrong_directions(graph: Dict[str, Set[str]]) -> List[str]:
    return [
        f"{m} imports {t}"
        for m, targets in sorted(graph.items())
        for t in sorted(targets)
        if _layer(m) not in ("", "bin")
        and _layer(t) != _layer(m)
        and _layer(t) not in ALLOWED[_layer(m)]
    ]


def _loops(graph: Dict[str, Set[str]]) -> List[str]:
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    loops: List[str] = []

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                loops.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return loops


def test_imports_go_the_documented_directions():
    modules = _modules()
    assert {_layer(m) for m in modules} - {"", "bin"} == set(ALLOWED), "a layer is not listed"
    wrong = _wrong_directions(_imports(modules))
    assert not wrong, "\n".join(wrong)


def test_no_import_loops_between_files():
    loops = _loops(_imports(_modules()))
    assert not loops, "\n".join(loops)


def test_the_checks_can_fail():
    """A model importing a task, scoring importing a model and a loop of three are found."""
    graph = {
        "espnet2_echat.models.llm": {"espnet2_echat.tasks.echat"},
        "espnet2_echat.scoring.wer": {"espnet2_echat.models.llm"},
        "espnet2_echat.data.a": {"espnet2_echat.data.b"},
        "espnet2_echat.data.b": {"espnet2_echat.data.c"},
        "espnet2_echat.data.c": {"espnet2_echat.data.a"},
    }
    assert len(_wrong_directions(graph)) == 2
    loop = ["espnet2_echat.data.a", "espnet2_echat.data.b", "espnet2_echat.data.c"]
    assert _loops(graph) == [" -> ".join(loop + loop[:1])]
