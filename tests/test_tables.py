"""The one table formatter: exact text of both variants, and every table offreg prints goes through it."""

import offreg.cli
import offreg.data.loader
import offreg.leaderboard.report
from offreg.data import format_table
from offreg.tables import markdown_table, text_table


def test_text_table_aligns_columns_and_cuts_trailing_spaces():
    table = text_table([["seed", "final score", "best"], [0, 12.5, None], ["10", "-", ""]])
    assert table == "seed  final score  best\n0     12.5         None\n10    -"


def test_markdown_table_escapes_cells_only():
    table = markdown_table(["a|b", "c"], [["x|y", "two\nlines"], [1, 2.5]])
    assert table == "| a|b | c |\n|---|---|\n| x\\|y | two lines |\n| 1 | 2.5 |"


def test_every_table_uses_the_formatter(monkeypatch):
    calls = []

    def spy(fn):
        def wrapped(*args, **kwargs):
            calls.append(fn.__name__)
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(offreg.data.loader, "text_table", spy(text_table))
    assert format_table([{"name": "a", "rows": 12_345}]) == "name  rows\na     12,345"
    assert calls == ["text_table"]
    assert offreg.cli.text_table is text_table and offreg.leaderboard.report.markdown_table is markdown_table
    assert not hasattr(offreg.cli, "_table") and not hasattr(offreg.leaderboard.report, "_md_table")
