"""The examples of README.md, docs/*.md and the ``offreg`` package docstring run as written.

**Python blocks** (```` ```python ````, and the ``::`` block of ``offreg/__init__.py``) run one by
one, each in a fresh namespace, in a temporary working directory, with the default dataset cache.
Budgets are made small by these substitutions (integers only, so the text still reads as the
papers' settings): ``steps=N`` -> ``steps=20``, ``eval_every=N`` -> ``eval_every=10``,
``episodes=N`` and ``eval_episodes=N`` -> ``=2``. A block whose first line is ``# long: <why>``
(it downloads a dataset or trains for long) or ``# fragment: <why>`` (part of a file, not a script)
is only compiled.

**Shell blocks** (```` ```bash ````) are not run: every command that starts with ``offreg`` (a line,
or a part of a line after ``&&`` or ``;``, with ``\\`` continuations joined and comments dropped)
is parsed by the real parser, :func:`offreg.cli.build_parser`, so a renamed or missing flag fails
here. Square brackets of a synopsis (``[--seed 0]``) are dropped first.
"""

from __future__ import annotations

import re
import shlex
import sys
import types
from pathlib import Path

import pytest

import offreg
from offreg.agents import names
from offreg.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SMALL = {"steps": "20", "eval_every": "10", "episodes": "2", "eval_episodes": "2"}
TAG = re.compile(r"#\s*(long|fragment):")


def _blocks(lang: str) -> list[tuple[str, str]]:
    """``(where, code)`` of every fenced block of ``lang`` in the docs."""
    out = []
    for path in DOCS:
        lines = path.read_text().splitlines()
        start = None
        for i, line in enumerate(lines):
            if start is None and line.strip() == f"```{lang}":
                start = i + 1
            elif start is not None and line.strip() == "```":
                out.append((f"{path.relative_to(ROOT)}:{start}", "\n".join(lines[start:i]) + "\n"))
                start = None
    return out


def _package_docstring() -> tuple[str, str]:
    """The indented ``::`` block of the ``offreg`` docstring."""
    lines = []
    for line in offreg.__doc__.split("::", 1)[1].splitlines()[1:]:
        if line.strip() and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "offreg/__init__.py", "\n".join(lines).strip() + "\n"


def small(code: str) -> str:
    """``code`` with the step, evaluation and episode budgets of :data:`SMALL`."""
    return re.sub(r"\b(steps|eval_every|episodes|eval_episodes)=[\d_]+", lambda m: f"{m[1]}={SMALL[m[1]]}", code)


PYTHON = [*_blocks("python"), _package_docstring()]


def test_the_blocks_are_found():
    assert any(w.startswith("README.md") for w, _ in PYTHON) and len(PYTHON) >= 6
    assert len(_blocks("bash")) >= 8


@pytest.mark.parametrize("where, code", PYTHON, ids=[w for w, _ in PYTHON])
def test_python_block_runs(where, code, tmp_path, monkeypatch):
    compiled = compile(small(code), where, "exec")
    if TAG.match(code.lstrip()):
        return
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(names, "_ENTRIES", dict(names._ENTRIES))  # agents a block registers leave with it
    module = types.ModuleType("__doc_example__")  # a real module, as a script has (dataclasses look it up)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compiled, module.__dict__)


def _commands(code: str) -> list[list[str]]:
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        for part in re.split(r"&&|;", line):
            words = shlex.split(part.replace("[", " ").replace("]", " "), comments=True)
            if words[:1] == ["offreg"]:
                commands.append(words[1:])
    return commands


BASH = [(f"{where} offreg {' '.join(c)}", c) for where, code in _blocks("bash") for c in _commands(code)]


@pytest.mark.parametrize("where, argv", BASH, ids=[w for w, _ in BASH])
def test_shell_command_parses(where, argv):
    args = build_parser().parse_args(argv)
    assert callable(getattr(args, "run", None)), f"{where}: no subcommand"


def test_small_substitutes_budgets_only():
    assert small("train(steps=1_000_000, eval_every=5000, seeds=5, eval_episodes=10, episodes=10)") == (
        "train(steps=20, eval_every=10, seeds=5, eval_episodes=2, episodes=2)"
    )
    assert small("max_steps=1000") == "max_steps=1000"
