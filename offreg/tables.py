"""Tables as text: the one formatter behind every table offreg prints or writes.

``text_table`` aligns columns for the terminal (``offreg train``, ``offreg eval``, ``offreg datasets
list``); ``markdown_table`` writes a GitHub-flavoured Markdown table (the leaderboard report). Cells
are shown with ``str``; formatting numbers is the caller's business. Base layer: imports nothing of
offreg.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def text_table(rows: Sequence[Sequence[Any]]) -> str:
    """Rows (the first is the header) as left-aligned columns two spaces apart, trailing spaces cut.

    Every row must have as many cells as the header.
    """
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; ``|`` in a cell is escaped and a newline becomes a space."""

    def esc(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
