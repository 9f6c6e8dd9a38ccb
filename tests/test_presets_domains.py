"""Each paper's AntMaze settings, keyed by dataset name, and the one place that decides a reward transform.

The expected rewards below are written from the cited official code, not from offreg's presets:

- PRDC, ``LAMDA-RL/PRDC:README.md`` (AntMaze command ``--scale=10000 --shift=-1``) with
  ``utils/buffer.py`` (``reward = scale * reward + shift``, after the fix of PR #1):
  ``{0, 1} -> {-1, 9999}``.
- O-DICE, ``maoliyuan/ODICE-Pytorch:main_odice_rl.py`` (AntMaze: ``r = -3 if r == 0 else 0``):
  ``{0, 1} -> {-3, 0}``.
- TD3+BC, no AntMaze setting in the paper or ``sfujim/TD3_BC``: CORL's TD3+BC AntMaze configs
  (``tinkoff-ai/CORL:configs/offline/td3_bc/antmaze/*_v2.yaml``, ``normalize_reward: true``) run
  ``algorithms/offline/td3_bc.py``'s ``modify_reward``, ``dataset["rewards"] -= 1.0`` for antmaze:
  ``{0, 1} -> {-1, 0}``.
- A2PR, no AntMaze setting published (``ltlhuuu/A2PR#1``): offreg's choice is PRDC's constants, the
  one AntMaze setting of the ``--scale``/``--shift`` flags A2PR's code inherits: ``{-1, 9999}``.
- BC ignores rewards: none applied, ``{0, 1}``.
"""

from __future__ import annotations

import importlib.resources
import json
import types

import numpy as np
import pytest
from d4rl_files import expected_qlearning, write_d4rl_file

import offreg
from offreg.agents import presets
from offreg.agents.presets import resolve_config, resolve_config_with_sources, resolve_run_settings
from offreg.cli import main
from offreg.data import DatasetInfo, from_arrays, load_dataset
from offreg.engine import read_run_config
from offreg.errors import ConfigError, UnknownNameError

AGENTS = ("bc", "td3bc", "prdc", "a2pr", "odice")
NAMES = ("antmaze-medium-play-v2", "D4RL/antmaze/medium-play-v1")

# raw reward -> trained-on reward, from the code each agent cites (see the module docstring)
GOLDEN_REWARDS = {
    "bc": {0.0: 0.0, 1.0: 1.0},
    "td3bc": {0.0: -1.0, 1.0: 0.0},
    "prdc": {0.0: -1.0, 1.0: 9999.0},
    "a2pr": {0.0: -1.0, 1.0: 9999.0},
    "odice": {0.0: -3.0, 1.0: 0.0},
}
CITED = {  # what the reward source of each agent's AntMaze preset must name
    "bc": "BC ignores rewards",
    "td3bc": "tinkoff-ai/CORL:configs/offline/td3_bc/antmaze",
    "prdc": "LAMDA-RL/PRDC:README.md",
    "a2pr": "ltlhuuu/A2PR#1",
    "odice": "maoliyuan/ODICE-Pytorch:main_odice_rl.py",
}
# eval_every, eval_episodes, final_eval_episodes (None: as eval_episodes), and the source each cites
GOLDEN_RUN = {
    "bc": ((5000, 100, None), "tinkoff-ai/CORL:configs/offline/bc/antmaze"),
    "td3bc": ((5000, 100, None), "tinkoff-ai/CORL:configs/offline/td3_bc/antmaze"),
    "prdc": ((1000, 50, 100), "LAMDA-RL/PRDC:utils/config.py"),
    "a2pr": ((5000, 10, 100), "ltlhuuu/A2PR:utils/config.py"),
    "odice": ((20000, 50, 100), "maoliyuan/ODICE-Pytorch:main_odice_rl.py"),
}


def _rewards_dataset(rewards, name):
    n = len(rewards)
    info = DatasetInfo(name, "file", None, 2, 1, n)
    obs = np.arange(2 * n, dtype=np.float64).reshape(n, 2)
    return from_arrays(obs, np.zeros((n, 1)), rewards, obs + 1.0, np.zeros(n), info)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("agent", AGENTS)
def test_antmaze_reward_transform_is_the_cited_one(agent, name):
    config, sources = resolve_config_with_sources(agent, name)
    raw = [0.0, 1.0, 0.0, 1.0, 1.0]
    seen = np.asarray(config.prepare(_rewards_dataset(raw, name)).transitions.rewards)
    np.testing.assert_array_equal(seen, [GOLDEN_REWARDS[agent][r] for r in raw])
    assert CITED[agent] in sources["reward_transform"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("agent", AGENTS)
def test_antmaze_evaluation_protocol_is_the_cited_one(agent, name):
    (every, episodes, final), cited = GOLDEN_RUN[agent]
    values, sources = resolve_run_settings(agent, name)
    got = (values["eval_every"], values["eval_episodes"], values.get("final_eval_episodes"))
    assert got == (every, episodes, final)
    assert cited in sources["eval_every"] and cited in sources["eval_episodes"]
    if final is not None:
        assert "ikostrikov/implicit_q_learning:README.md" in sources["final_eval_episodes"]


@pytest.mark.parametrize("agent", AGENTS)
def test_locomotion_keeps_the_engine_protocol(agent):
    for name in ("hopper-medium-v2", "offreg/hopper-medium-replay-v0", "halfcheetah-medium-expert-v2"):
        assert resolve_run_settings(agent, name) == ({}, {})
    assert resolve_run_settings(agent, None) == ({}, {})


def test_odice_antmaze_network_options():
    """maoliyuan/ODICE-Pytorch:main_odice_rl.py: no LayerNorm on AntMaze; one V for 'large' and 'umaze-diverse'."""
    for name, twin in [("antmaze-umaze-v2", True), ("antmaze-umaze-diverse-v2", False),
                       ("antmaze-medium-diverse-v2", True), ("D4RL/antmaze/large-play-v1", False),
                       ("D4RL/antmaze/umaze-diverse-v1", False), ("D4RL/antmaze/medium-play-v1", True)]:
        cfg = resolve_config("odice", name)
        assert (cfg.layer_norm, cfg.twin_v, cfg.normalize_observations) == (False, twin, False), name
    assert resolve_config("odice", "hopper-medium-v2").layer_norm is True


def test_a_d4rl_file_under_its_own_name_gets_its_presets():
    d4rl_file = "/data/Ant_maze_big-maze_noisy_multistart_True_multigoal_False_sparse_fixed.hdf5"
    cfg = resolve_config("prdc", d4rl_file)  # the cache file of antmaze-medium-play-v2
    assert (cfg.reward_scale, cfg.reward_shift, cfg.alpha) == (10000.0, -1.0, 7.5)
    assert resolve_run_settings("odice", d4rl_file)[0]["eval_every"] == 20000
    assert resolve_config("prdc", "/data/halfcheetah_medium-v2.hdf5").alpha == 40.0
    assert resolve_config("prdc", "/data/maze.hdf5").reward_transform == "none"


def _preset_file(monkeypatch, tmp_path, agent, doc):
    (tmp_path / "configs").mkdir(exist_ok=True)
    (tmp_path / "configs" / f"{agent}.json").write_text(json.dumps(doc))
    real = importlib.resources.files
    monkeypatch.setattr(importlib.resources, "files", lambda pkg: tmp_path if pkg == "offreg" else real(pkg))


@pytest.mark.parametrize("run, error, match", [
    ({"eval_evry": 5}, UnknownNameError, "eval_every"),
    ({"eval_episodes": 0}, ConfigError, "eval_episodes must be an integer >= 1"),
    ({"eval_every": 2.5}, ConfigError, "eval_every must be an integer >= 0"),
    ([5000], ConfigError, "'run' must be an object"),
])
def test_a_bad_run_entry_is_named(monkeypatch, tmp_path, run, error, match):
    _preset_file(monkeypatch, tmp_path, "bc", {"datasets": [{"match": "x-*", "values": {}, "run": run}]})
    with pytest.raises(error, match=match):
        presets.load_presets("bc")


# --- the run: one place decides the reward transform, and config.json records it ------------------------
@pytest.fixture(scope="module")
def antmaze_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "antmaze-umaze-v2.hdf5"
    return path, write_d4rl_file(path, "antmaze", n_episodes=3, max_episode_steps=50)


def _evaluator(calls):
    def evaluate(agent, dataset, episodes, seed):
        calls.append(episodes)
        return types.SimpleNamespace(returns=np.zeros(episodes), lengths=np.ones(episodes), normalized=None)

    return evaluate


SMALL = {"actor_hidden_dims": [8], "critic_hidden_dims": [8], "batch_size": 16}


def test_a_run_records_the_transform_it_trained_on(tmp_path, antmaze_file):
    path, arrays = antmaze_file
    calls = []
    offreg.train("prdc", str(path), steps=4, eval_every=2, log_every=2, overrides=SMALL, out_dir=tmp_path / "run",
                 progress=False, evaluator=_evaluator(calls))
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    info = json.loads((tmp_path / "run" / "dataset_info.json").read_text())
    applied = doc["reward_transform"]
    assert applied == {"kind": "antmaze", "scale": 10000.0, "shift": -1.0}  # LAMDA-RL/PRDC:README.md
    assert applied == {"kind": info["reward_transform"], "scale": info["reward_scale"], "shift": info["reward_shift"]}
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["reward_transform"] == applied
    # the rewards the engine samples from: the dataset loaded and prepared as train and resume do
    settings, config = read_run_config(tmp_path / "run")
    seen = np.asarray(config.prepare(load_dataset(settings.dataset, **settings.dataset_options)).transitions.rewards)
    raw = expected_qlearning(arrays)["rewards"]
    assert set(np.unique(raw)) == {0.0, 1.0}
    np.testing.assert_array_equal(seen, (applied["scale"] * raw + applied["shift"]).astype(np.float32))
    # the evaluation protocol: the user's eval_every, PRDC's 50 episodes, 100 at the end
    assert calls == [50, 100]
    assert (doc["eval_every"], doc["eval_episodes"], doc["final_eval_episodes"]) == (2, 50, 100)
    assert doc["sources"]["eval_every"] == "user"
    assert "LAMDA-RL/PRDC:utils/config.py" in doc["sources"]["eval_episodes"]
    assert (settings.eval_every, settings.last_eval_episodes) == (2, 100)


def test_user_eval_episodes_win_over_the_preset_including_the_last(tmp_path, antmaze_file):
    calls = []
    offreg.train("prdc", str(antmaze_file[0]), steps=4, eval_every=2, eval_episodes=3, log_every=2, overrides=SMALL,
                 progress=False, evaluator=_evaluator(calls))
    assert calls == [3, 3]


@pytest.mark.parametrize("agent", ["prdc", "bc"])
def test_a_dataset_transform_other_than_the_configs_is_refused(tmp_path, antmaze_file, agent):
    option = {"reward_transform": "antmaze", "reward_scale": 1.0, "reward_shift": -1.0}
    with pytest.raises(ConfigError, match="the agent config decides the reward transform"):
        offreg.train(agent, str(antmaze_file[0]), steps=2, log_every=2, dataset_options=option,
                     out_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="'antmaze' needs reward_scale and reward_shift"):
        load_dataset(antmaze_file[0], reward_transform="antmaze")


def test_cli_applies_the_preset_protocol_unless_a_flag_is_given(tmp_path, antmaze_file):
    base = ["train", "--agent", "bc", "--dataset", str(antmaze_file[0]), "--steps", "2", "--set", "hidden_dims=[8]",
            "--quiet"]
    assert main([*base, "--out", str(tmp_path / "preset")]) == 0
    doc = json.loads((tmp_path / "preset" / "config.json").read_text())
    assert (doc["eval_every"], doc["eval_episodes"], doc["final_eval_episodes"]) == (5000, 100, None)
    assert "tinkoff-ai/CORL" in doc["sources"]["eval_episodes"]
    assert doc["reward_transform"] == {"kind": "none", "scale": 1.0, "shift": 0.0}
    assert main([*base, "--eval-every", "0", "--eval-episodes", "5", "--out", str(tmp_path / "flags")]) == 0
    doc = json.loads((tmp_path / "flags" / "config.json").read_text())
    assert (doc["eval_every"], doc["eval_episodes"], doc["sources"]["eval_every"]) == (0, 5, "user")
