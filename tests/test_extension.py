"""Adding agents from outside offreg: one registry call, or the ``offreg.agents`` entry-point group.

The regularizer trained here is the worked example of docs/agents.md, read from the page itself.
"""

import json
import re
import sys
from pathlib import Path

import pytest

from offreg.agents import names
from offreg.checkpoint import read_checkpoint
from offreg.cli import main
from offreg.logging import read_jsonl

DOCS = Path(__file__).resolve().parents[1] / "docs" / "agents.md"
DATASET = "offreg/hopper-medium-replay-v0"
TINY = ["--set", "actor_hidden_dims=[8]", "--set", "critic_hidden_dims=[8]", "--set", "batch_size=16"]


def _example() -> str:
    text = DOCS.read_text()
    match = re.search(r"<!-- example: sampled-nearest -->\n```python\n(.*?)```", text, flags=re.S)
    assert match, "docs/agents.md lost its worked example"
    return match.group(1)


@pytest.fixture
def registry_snapshot(monkeypatch):
    """Registrations made by a test disappear with it."""
    monkeypatch.setattr(names, "_ENTRIES", dict(names._ENTRIES))


def test_a_regularizer_in_one_module_trains_through_the_cli(tmp_path, monkeypatch, registry_snapshot):
    module = tmp_path / "sampled_nearest_example.py"
    module.write_text(_example())
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__("sampled_nearest_example")
    assert "td3-sampled" in names.registry()
    out = tmp_path / "run"
    code = main(["train", "--agent", "td3-sampled", "--dataset", DATASET, "--steps", "4", "--log-every", "2",
                 "--eval-every", "0", "--quiet", *TINY, "--set", "weight=0.5", "--set", "num_samples=4",
                 "--out", str(out)])
    assert code == 0
    losses = [r["sampled_nearest_loss"] for r in read_jsonl(out / "metrics.jsonl") if r["kind"] == "train"]
    assert len(losses) == 2 and all(x > 0 for x in losses)
    config = json.loads((out / "config.json").read_text())["agent_config"]
    assert config["regularizer"] == {"kind": "sampled-nearest", "num_samples": 4, "weight": 0.5}
    ckpt = read_checkpoint(out)
    assert ckpt.agent_name == "td3-sampled" and float(ckpt.agent.coefs["weight"][0]) == 0.5
    del sys.modules["sampled_nearest_example"]


def _install(where, monkeypatch, dist_name: str, entry_point: str) -> None:
    """A distribution on ``sys.path`` with one ``offreg.agents`` entry point; the registry reads it anew."""
    dist = where / f"{dist_name.replace('-', '_')}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[offreg.agents]\n{entry_point}\n")
    monkeypatch.syspath_prepend(str(where))
    monkeypatch.setattr(names, "_LOADED_ENTRY_POINTS", False)


def test_entry_point_agents_are_registered(tmp_path, monkeypatch, registry_snapshot):
    """A package installed elsewhere registers an agent through the documented entry-point group."""
    (tmp_path / "offreg_demo_agents.py").write_text(
        "from offreg.agents import AgentEntry\n"
        "ENTRIES = [AgentEntry('td3-demo', agent='offreg.agents.td3:TD3Agent', config='offreg.agents.td3:TD3Config',\n"
        "                      regularizer='offreg.agents.regularizers:BC', description='a demo entry point')]\n"
    )
    _install(tmp_path, monkeypatch, "offreg-demo-agents", "demo = offreg_demo_agents:ENTRIES")
    assert "td3-demo" not in names._ENTRIES
    assert names.registry()["td3-demo"].description == "a demo entry point"
    out = tmp_path / "run"
    assert main(["train", "--agent", "td3-demo", "--dataset", DATASET, "--steps", "2", "--log-every", "2",
                 "--eval-every", "0", "--quiet", *TINY, "--out", str(out)]) == 0
    assert read_checkpoint(out).agent_name == "td3-demo"


def test_a_broken_entry_point_is_one_clear_error(tmp_path, monkeypatch, registry_snapshot, capsys):
    _install(tmp_path, monkeypatch, "offreg-broken", "broken = no_such_module_here:ENTRIES")
    assert main(["agents"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "'broken'" in err[-1] and "uninstall" in err[-1]
