"""Size rules a reader relies on: no agent file longer than 350 lines, no function longer than 60.

A function may be longer only when the first line of its docstring (or a later one) says why, with
``Long because:``. The known exceptions below are named one by one, so the list can only shrink.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "offreg"
MAX_AGENT_FILE_LINES = 350
MAX_FUNCTION_LINES = 60
MARKER = "Long because:"


def _functions(tree: ast.AST, prefix: str = ""):
    """``(qualified name, node)`` of every function, nested ones included (``outer.inner``)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{prefix}{node.name}"
            yield name, node
            yield from _functions(node, f"{name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def long_functions(root: Path = PACKAGE) -> set[tuple[str, str]]:
    """``(path, qualified name)`` of each function longer than the limit without a ``Long because:`` line."""
    out = set()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        for name, node in _functions(ast.parse(path.read_text(), rel)):
            if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES and MARKER not in (ast.get_docstring(node) or ""):
                out.add((rel, name))
    return out


def test_no_function_longer_than_the_limit_without_a_reason():
    found = long_functions()
    new = sorted(found)
    assert not new, f"functions over {MAX_FUNCTION_LINES} lines (split them, or say why with {MARKER!r}): {new}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "agents").rglob("*.py")), ids=lambda p: p.name)
def test_agent_files_are_short(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_AGENT_FILE_LINES, f"{path.relative_to(ROOT)} has {lines} lines (limit {MAX_AGENT_FILE_LINES})"


def test_the_rules_catch_a_long_function_and_accept_a_reason(tmp_path):
    pkg = tmp_path / "offreg"
    pkg.mkdir()
    body = [f"x{i} = {i}" for i in range(MAX_FUNCTION_LINES)]  # + the def line: one over the limit
    lines = ["class C:", "    def long(self):", *(" " * 8 + b for b in body),
             "def reasoned():", '    """Long because: one table."""', *("    " + b for b in body),
             "def exact():", *("    " + b for b in body[1:])]
    (pkg / "m.py").write_text("\n".join(lines) + "\n")
    assert long_functions(pkg) == {("offreg/m.py", "C.long")}
