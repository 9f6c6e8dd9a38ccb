"""`offreg leaderboard run` + `report` on generated AntMaze, Adroit and Minari data: each row names its evaluation path.

The datasets are written here (no download): a D4RL-format AntMaze umaze file named like D4RL's
``antmaze-umaze-v2`` download, a D4RL-format Adroit door file named ``door-human-v1.hdf5``, and a
Minari dataset recorded in Gymnasium-Robotics' ``AntMaze_UMaze-v5``. The expected normalized scores are
recomputed from the results files' returns with D4RL's reference scores written out below.
"""

from __future__ import annotations

import csv
import html
import json
import re

import h5py
import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics")
pytest.importorskip("minari")

from offreg import cli  # noqa: E402
from offreg.data.generate.adroit import adroit_file  # noqa: E402
from offreg.data.generate.antmaze import write_antmaze_hdf5  # noqa: E402
from offreg.data.generate.minari_data import write_minari_dataset  # noqa: E402
from offreg.leaderboard.results import job_id  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`eval_env` is set to None", "ignore::UserWarning")

ANTMAZE_FILE = "Ant_maze_u-maze_noisy_multistart_False_multigoal_False_sparse_fixed.hdf5"  # antmaze-umaze-v2
MINARI_ID = "test/antmaze/umaze-v0"
# d4rl/infos.py: REF_MIN_SCORE / REF_MAX_SCORE; the Minari dataset's are written into its metadata below
REFS = {"antmaze": (0.0, 1.0), "door": (-56.512833, 2880.5693087298737), "minari": (0.0, 1.0)}
PATHS = {"antmaze": "d4rl-env", "door": "gymnasium-robotics+d4rl-reward", "minari": "recorded-env"}


class Overdriven:
    """A fixed linear policy ``2 tanh(obs W)`` whose actions leave [-1, 1], so the file must clip them."""

    w = np.random.default_rng(0).normal(0, 1.0, (39, 28))

    def __call__(self, obs):
        return 2.0 * np.tanh(np.asarray(obs, np.float64) @ self.w)

    def __str__(self):
        return "overdriven linear test policy"


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    root = tmp_path_factory.mktemp("domains")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINARI_DATASETS_PATH", str(root / "minari"))
    try:
        antmaze = str(write_antmaze_hdf5(root / ANTMAZE_FILE, "umaze", steps=100, episode_steps=50))
        door = str(adroit_file(root / "door-human-v1.hdf5", "door", episodes=1, seed=0, policy=Overdriven()))
        write_minari_dataset(MINARI_ID, "AntMaze_UMaze-v5", episodes=2, max_episode_steps=30,
                             env_kwargs={"continuing_task": False}, ref_min_score=0.0, ref_max_score=1.0)
        datasets = {"antmaze": antmaze, "door": door, "minari": MINARI_ID}
        out = root / "lb"
        code = cli.main(["leaderboard", "run", "--agents", "bc", "--datasets", ",".join(datasets.values()),
                         "--seeds", "2", "--steps", "20", "--eval-every", "20", "--eval-episodes", "1",
                         "--eval-max-steps", "20", "--log-every", "20", "--set", "bc.hidden_dims=[8]",
                         "--set", "batch_size=16", "--out", str(out), "--quiet"])
        assert code == 0
        assert cli.main(["leaderboard", "report", str(out)]) == 0
    finally:
        mp.undo()
    return out, datasets


def _results(out, dataset):
    return json.loads((out / "results" / f"{job_id('bc', dataset)}.json").read_text())


def test_csv_rows_name_the_evaluation_path(board):
    out, datasets = board
    rows = {r["dataset"]: r for r in csv.DictReader((out / "report" / "leaderboard.csv").open())}
    assert {r["eval_path"] for r in rows.values()} == set(PATHS.values())
    for kind, name in datasets.items():
        assert rows[name]["status"] == "complete" and rows[name]["eval_path"] == PATHS[kind], kind


def test_markdown_and_html_show_the_evaluation_path(board):
    out, datasets = board
    md = (out / "report" / "leaderboard.md").read_text()
    assert "| evaluation path |" in md
    for kind, name in datasets.items():
        assert any(name in line and f"| {PATHS[kind]} |" in line for line in md.splitlines()), kind
    page = (out / "report" / "leaderboard.html").read_text()
    runs = page[page.index('<table id="runs"'):]
    runs = runs[:runs.index("</table>")]
    assert "<th>evaluation path</th>" in runs
    cells = [[html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
             for row in re.findall(r"<tr>(.*?)</tr>", runs)]
    for kind, name in datasets.items():
        assert any(name in row and PATHS[kind] in row for row in cells), kind


def test_report_scores_are_d4rl_normalized_returns(board):
    out, datasets = board
    rows = {r["dataset"]: r for r in csv.DictReader((out / "report" / "leaderboard.csv").open())}
    for kind, name in datasets.items():
        lo, hi = REFS[kind]
        doc = _results(out, name)
        last = max(e["step"] for e in doc["evaluations"])
        finals = [e for e in doc["evaluations"] if e["step"] == last]
        assert sorted(e["seed"] for e in finals) == [0, 1] and last == 20
        per_seed = [np.mean([100.0 * (r - lo) / (hi - lo) for r in e["returns"]]) for e in finals]
        np.testing.assert_allclose(float(rows[name]["final_mean"]), np.mean(per_seed), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(float(rows[name]["final_std"]), np.std(per_seed), rtol=1e-9, atol=1e-9)
    door = [r for e in _results(out, datasets["door"])["evaluations"] for r in e["returns"]]
    assert all(r != 0.0 for r in door)  # a dense return, so the reference scores are really used


def test_adroit_file_records_the_given_policys_clipped_actions(board):
    _, datasets = board
    with h5py.File(datasets["door"]) as f:
        obs, actions = f["observations"][:], f["actions"][:]
        algorithm, level = f["metadata/algorithm"][()].decode(), f["metadata/level"][()].decode()
    expected = np.clip(Overdriven()(obs), -1.0, 1.0)
    assert obs.shape == (200, 39) and np.abs(Overdriven()(obs)).max() > 1.5  # the bounds are really hit
    np.testing.assert_allclose(actions, expected, atol=1e-6)
    assert (algorithm, level) == ("overdriven linear test policy", "policy")
