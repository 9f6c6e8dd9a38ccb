"""The leaderboard as one static, self-contained HTML page.

No server and no external resources: the plots are embedded as base64 PNG ``data:`` URIs, the
style and the table-sorting script are inline. Clicking a column header of a table with class
``sortable`` sorts its rows by that column (numbers numerically, by the ``data-value`` of a cell
when it has one; a second click reverses the order).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping
from typing import Any

from offreg.leaderboard.board import Leaderboard, environment_text, run_rows, settings_text
from offreg.leaderboard.results import COMPLETE

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; }
th { background: #f0f0f0; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
td.bad { color: #b00; font-weight: bold; }
td.warn { color: #a60; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
.note { color: #555; font-size: 13px; }
"""

_SCRIPT = """
(function () {
  function key(cell) {
    var v = cell.getAttribute('data-value');
    if (v === null) { v = cell.textContent.trim(); }
    var x = parseFloat(v);
    return isNaN(x) ? v.toLowerCase() : x;
  }
  function compare(a, b) {
    if (typeof a === typeof b) { return a < b ? -1 : (a > b ? 1 : 0); }
    return typeof a === 'number' ? -1 : 1;
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var headers = table.querySelectorAll('thead th');
    headers.forEach(function (th, col) {
      th.addEventListener('click', function () {
        var asc = th.getAttribute('aria-sort') !== 'ascending';
        headers.forEach(function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          var c = compare(key(r1.cells[col]), key(r2.cells[col]));
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: float | None) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.6g}"


def _td(text: Any, value: float | None = None, cls: str = "") -> str:
    attrs = "" if value is None else f' data-value="{_num(value)}"'
    attrs += f' class="{cls}"' if cls else ""
    return f"<td{attrs}>{_e(text)}</td>"


def _table(table_id: str, header: list[str], rows: list[str], sortable: bool = True) -> str:
    cls = ' class="sortable"' if sortable else ""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    return f'<table id="{table_id}"{cls}><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def render(board: Leaderboard, figures: Mapping[str, bytes]) -> str:
    """The HTML page of a :class:`~offreg.leaderboard.board.Leaderboard` with its PNG ``figures``.

    Long because: the page's sections, in the order they appear on it.
    """
    c = f"{board.confidence:.0%}"
    rows = []
    for r in run_rows(board):
        status_cls = "" if r["status"] == COMPLETE else "bad"
        final = "-" if r["final_mean"] is None else f"{r['final_mean']:.1f} ± {r['final_std']:.1f}"
        best = "-" if r["best_mean"] is None else f"{r['best_mean']:.1f} ± {r['best_std']:.1f}"
        paper = "-" if r["paper_score"] is None else (
            f"{r['paper_score']:.1f}" + ("" if r["paper_std"] is None else f" ± {r['paper_std']:.1f}"))
        if r["paper_score"] is None:
            comp, comp_cls = "-", ""
        elif r["comparable_with_paper"]:
            comp, comp_cls = "yes", ""
        else:
            comp, comp_cls = "NO: " + r["not_comparable_because"], "warn"
        rows.append(
            "<tr>" + _td(r["agent"]) + _td(r["dataset"]) + _td(r["status"], cls=status_cls)
            + _td(r["seeds"], r["seeds"]) + _td(final, r["final_mean"]) + _td(best, r["best_mean"])
            + _td(paper, r["paper_score"]) + _td(r["paper_source"] or "-") + _td(comp, cls=comp_cls)
            + _td("-" if r["wall_time_s"] is None else f"{r['wall_time_s']:.0f}", r["wall_time_s"])
            + _td(r["eval_path"] or "-") + _td(r["note"], cls="bad" if r["note"] else "") + "</tr>"
        )
    runs = _table("runs", ["agent", "dataset", "status", "seeds", "final score (mean ± std)",
                           "best during training (mean ± std)", "paper", "paper source", "comparable with paper",
                           "wall time (s)", "evaluation path", "note"], rows)
    agg_rows = [
        "<tr>" + _td(a.agent) + _td(f"{a.datasets}/{len(board.datasets)}", a.datasets) + _td(a.runs, a.runs)
        + _td(f"{a.mean:.1f}", a.mean) + _td(f"[{a.mean_ci[0]:.1f}, {a.mean_ci[1]:.1f}]", a.mean_ci[0])
        + _td(f"{a.iqm:.1f}", a.iqm) + _td(f"[{a.iqm_ci[0]:.1f}, {a.iqm_ci[1]:.1f}]", a.iqm_ci[0]) + "</tr>"
        for a in board.aggregates
    ]
    agg = _table("aggregate", ["agent", "datasets", "runs", "mean of dataset means", f"{c} CI", "IQM", f"{c} CI"],
                 agg_rows)
    pivot_rows = []
    for d in board.datasets:
        cells = []
        for a in board.agents:
            e = board.entry(a, d)
            if e is None or e.status != COMPLETE or not e.final:
                status = "" if e is None else ("no scores" if e.status == COMPLETE else e.status)
                cells.append(_td(status, cls="bad" if status else ""))
            else:
                m, sd = e.final_mean_std
                cells.append(_td(f"{m:.1f} ± {sd:.1f}", m))
        pivot_rows.append("<tr>" + _td(d) + "".join(cells) + "</tr>")
    pivot = _table("final", ["dataset", *board.agents], pivot_rows)
    imgs = "".join(
        f'<figure><img alt="{_e(name.removesuffix(".png").replace("_", " "))}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}"></figure>'
        for name, png in figures.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>offreg leaderboard</title>
<link rel="icon" href="data:,">
<style>{_STYLE}</style>
</head>
<body>
<h1>offreg leaderboard</h1>
<p class="note">Generated by <code>offreg leaderboard report</code> from the results files in
<code>{_e(board.directory)}/results</code>. Settings: {_e(settings_text(board))}.
Scores are D4RL normalized scores. The final score (end of training) is the primary number; the best
during training is optimistic. Click a column header to sort.</p>
<h2>Final normalized score (mean ± std over seeds, end of training)</h2>
{pivot}
<h2>Every run</h2>
{runs}
<h2>Aggregate over datasets (final scores; {c} stratified bootstrap CIs, {board.reps} replicates)</h2>
{agg}
<h2>Plots</h2>
{imgs or '<p>No scores to plot.</p>'}
<h2>Environment</h2>
<p class="note">{_e(environment_text(board))}</p>
<script>{_SCRIPT}</script>
</body>
</html>
"""
