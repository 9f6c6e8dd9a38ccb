"""The leaderboard's HTML page in a real headless browser (Debian's chromium driven by Playwright):
it loads from a file without console errors or network requests, its tables sort, its plots show."""

import shutil
import sys

import pytest
from test_leaderboard import write_synthetic

from offreg.leaderboard.report import write_report

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the browser test runs on Linux")

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def _chromium() -> str:
    for name in CHROMIUM:
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("no chromium found: install it with apt-get install -y chromium (.ci/run does)")


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("board")
    write_synthetic(out, agents=("bc", "td3bc", "odice"), skip={("td3bc", "walker2d-medium-v2")})
    return write_report(out, ["html"], out=out / "report", reps=100)["leaderboard.html"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _column(page, table, col):
    return page.eval_on_selector_all(
        f"#{table} tbody tr", f"rows => rows.map(r => r.cells[{col}].getAttribute('data-value'))"
    )


def test_page_loads_sorts_and_shows_plots(browser, page_file):
    page = browser.new_page()
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_file.as_uri())
    page.wait_for_load_state("load")

    # every (agent, dataset) row is there, the missing one flagged
    assert page.locator("#runs tbody tr").count() == 9
    assert "missing" in page.locator("#runs tbody").inner_text()

    # click "final score": ascending (missing rows, without a value, last), click again: descending
    header = page.locator("#runs thead th", has_text="final score")
    header.click()
    values = [float(v) for v in _column(page, "runs", 4) if v]
    assert len(values) == 8 and values == sorted(values)
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    values = [float(v) for v in _column(page, "runs", 4) if v]
    assert values == sorted(values, reverse=True)
    # text column: agent names sort alphabetically
    page.locator("#runs thead th", has_text="agent").first.click()
    agents = page.eval_on_selector_all("#runs tbody tr", "rows => rows.map(r => r.cells[0].textContent)")
    assert agents == sorted(agents)
    # the aggregate table sorts by IQM
    page.locator("#aggregate thead th", has_text="IQM").first.click()
    iqms = [float(v) for v in _column(page, "aggregate", 5)]
    assert len(iqms) == 3 and iqms == sorted(iqms)

    # the per-dataset table (datasets x agents) sorts by an agent's column
    assert page.locator("#final tbody tr").count() == 3
    page.locator("#final thead th", has_text="odice").click()
    odice = [float(v) for v in _column(page, "final", 3)]
    assert len(odice) == 3 and odice == sorted(odice)

    # the three plots are embedded images that decoded to real pixels
    sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(sizes) == 3 and all(c and w > 100 and h > 100 for c, w, h in sizes)
    assert all(url.startswith(("file:", "data:")) for url in requests)  # self-contained: nothing fetched
    assert errors == []
    page.close()
