"""Citations a user can follow: nothing in the repository cites the project's private specifications.

Sources name the paper (arXiv id, table), the official repository and file (``owner/repo:path``), or
the third-party page a number was copied from; never ``specs/*.md``, their sections or the
``shared/`` folder beside the repository, which no user has.
"""

import json
import re
from pathlib import Path

import pytest

from offreg.agents.names import registry
from offreg.agents.presets import load_presets

ROOT = Path(__file__).resolve().parents[1]
TEXT = (".py", ".md", ".csv", ".json", ".sh", ".txt", ".html", ".toml", ".yaml", ".yml")
PRIVATE = re.compile(
    r"\bspecs?/|\bshared/|\.md\s*§|\bspec\s*(§|section\b|\d)|\bspec [\w-]+\.md|\bthe spec\b|\bspec's\b"
    r"|\bspecifications?:|(?<![\w/])(a2pr|prdc|d4rl)\.md\b",
    re.IGNORECASE,
)


def _citations(text):
    return [m.group(0) for m in PRIVATE.finditer(text)]


@pytest.mark.parametrize("cited", [
    "../shared/specs/prdc.md", "spec prdc.md 6.1, 11.3", "spec section 6.3", "- specs/odice.md §9",
    "``d4rl.md`` §2.4", "see the D4RL spec §6", "the spec's IL settings", "(spec 6.2, not from the paper)",
])
def test_the_scan_finds_spec_citations(cited):
    assert _citations(cited)


@pytest.mark.parametrize("fine", [
    "LAMDA-RL/PRDC:utils/config.py", "arXiv 2402.00348 Table 1", "docs/odice.md", "docs/prdc_a2pr.md",
    "spec = get_spec(name)", "env.spec is not None", "ModelSpec", "Run every job of ``spec``",
])
def test_the_scan_leaves_other_text_alone(fine):
    assert not _citations(fine)


def test_packaged_config_sources_cite_no_specs():
    for name in sorted(registry()):
        presets = load_presets(name)
        texts = [*presets["sources"].values(), *(e.get("source", "") for e in presets["datasets"])]
        raw = ROOT / "offreg" / "configs" / f"{name}.json"
        if raw.is_file():
            texts.append(json.loads(raw.read_text()).get("notes", ""))
        assert not [c for t in texts for c in _citations(t)], name


def test_reference_scores_cite_no_specs():
    from offreg.leaderboard.report import read_reference_scores

    rows = read_reference_scores(ROOT / "experiments" / "reference_scores.csv")
    assert rows
    assert not [(r["agent"], r["dataset"], r["source"]) for r in rows if _citations(r["source"])]


def test_no_file_cites_the_specs():
    """Docs, README, code comments, configs, experiments and their reports."""
    me = Path(__file__).resolve()
    found = []
    for top in ("offreg", "docs", "experiments", "tests", "README.md"):
        paths = [ROOT / top] if (ROOT / top).is_file() else sorted((ROOT / top).rglob("*"))
        for path in paths:
            if path.suffix not in TEXT or path.resolve() == me or not path.is_file():
                continue
            for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                found += [f"{path.relative_to(ROOT)}:{i}: {c}" for c in _citations(line)]
    assert not found, "\n".join(found)
