"""The ``offreg`` command line end to end, on a small generated D4RL-format file.

The file is named like D4RL's Hopper download, so the loader attaches the Hopper environment and
D4RL's reference scores and training evaluates in MuJoCo (episodes of an untrained policy end after
a few dozen steps).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from d4rl_files import write_d4rl_file

import offreg
from offreg.cli import main
from offreg.logging import read_jsonl

pytestmark = pytest.mark.filterwarnings("ignore:dataset .* has .* rows but the catalogue expects")

HOPPER_REF_MIN, HOPPER_REF_MAX = -20.272305, 3234.3  # D4RL's hopper reference returns (infos.py)
TINY = ["--set", "hidden_dims=[8]", "--set", "batch_size=16"]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "hopper_medium-v2.hdf5"
    write_d4rl_file(path, "hopper", n_episodes=4, max_episode_steps=30)
    return path


def test_train_eval_and_resume_end_to_end(tmp_path, data_file, capsys):
    run = tmp_path / "run"
    code = main(["train", "--agent", "bc", "--dataset", str(data_file), "--steps", "20", "--eval-every", "10",
                 "--eval-episodes", "2", "--seeds", "2", *TINY, "--out", str(run), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "final normalized score" in out and f"run directory: {run}" in out
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoints", "config.json", "curve.png", "dataset_info.json", "metrics.jsonl", "summary.json"
    ]
    config = json.loads((run / "config.json").read_text())
    assert (config["agent"], config["dataset"], config["seeds"], config["steps"]) == ("bc", str(data_file), [0, 1], 20)
    assert config["agent_config"]["hidden_dims"] == [8] and config["agent_config"]["batch_size"] == 16
    assert json.loads((run / "dataset_info.json").read_text())["env_id"] == "hopper"

    records = read_jsonl(run / "metrics.jsonl")
    train = [(r["step"], r["seed"]) for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    assert train == [(10, 0), (10, 1), (20, 0), (20, 1)]
    assert [(r["step"], r["seed"]) for r in evals] == [(10, 0), (10, 1), (20, 0), (20, 1)]
    for r in evals:  # normalized score from D4RL's reference returns, computed here
        returns = np.array(r["returns"])
        assert len(returns) == 2 and r["return_mean"] == pytest.approx(returns.mean())
        expected = 100 * (returns - HOPPER_REF_MIN) / (HOPPER_REF_MAX - HOPPER_REF_MIN)
        assert r["score_mean"] == pytest.approx(expected.mean(), rel=1e-6)

    summary = json.loads((run / "summary.json").read_text())
    finals = {r["seed"]: r for r in evals if r["step"] == 20}
    assert [p["seed"] for p in summary["per_seed"]] == [0, 1]
    for p in summary["per_seed"]:
        assert p["final_score"] == pytest.approx(finals[p["seed"]]["score_mean"])
        assert p["final_return"] == pytest.approx(finals[p["seed"]]["return_mean"])
    assert (run / "curve.png").read_bytes()[:4] == b"\x89PNG"
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["step_000000010.msgpack", "step_000000020.msgpack"]
    agent = offreg.load_agent(run, seed=1)
    actions = np.asarray(agent.act(np.zeros((3, 11), np.float32)))
    assert actions.shape == (3, 3) and np.all(np.abs(actions) <= 1.0)

    # `offreg eval` reloads the checkpoint and reproduces the final evaluation of training
    assert main(["eval", str(run), "--episodes", "2"]) == 0
    assert "score mean" in capsys.readouterr().out
    doc = json.loads((run / "eval.json").read_text())
    for rec in doc["per_seed"]:
        np.testing.assert_allclose(rec["returns"], finals[rec["seed"]]["returns"], rtol=1e-9)

    # `--resume` extends the run to 30 steps
    assert main(["train", "--resume", str(run), "--steps", "30", "--quiet"]) == 0
    capsys.readouterr()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["step"] == 30 and summary["resumed"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir())[-1] == "step_000000030.msgpack"
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "eval"][-2:] == [30, 30]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--agent", "nope"], "unknown agent 'nope'"),
        (["--agent", "bc", "--set", "hidden_dims"], "--set expects KEY=VALUE"),
        (["--agent", "bc", "--set", "hiden_dims=[8]"], "hiden_dims"),
        (["--agent", "bc", "--set", "lr=fast"], "lr"),
        (["--agent", "bc", "--dataset", "MISSING"], "missing.hdf5"),
        (["--agent", "bc", "--dataset", "hopper-mediun-v2"], "hopper-medium-v2"),
        (["--agent", "bc", "--steps", "many"], "invalid int value"),
        (["--agent", "bc", "--eval-every", "15", "--log-every", "10"], "multiple of log_every"),
        (["--agent", "bc", "--resume", "RUN"], "cannot be combined with --resume"),
        (["--agent", "bc", "--config", "MISSING"], "does not exist"),
    ],
)
def test_bad_train_invocations_exit_2_with_one_line(tmp_path, data_file, capsys, args, needle):
    out = tmp_path / "run"
    args = [str(tmp_path / "missing.hdf5") if a == "MISSING" else str(tmp_path) if a == "RUN" else a for a in args]
    if "--dataset" not in args:
        args += ["--dataset", str(data_file)]
    assert main(["train", *args, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and needle in err
    assert not out.exists()  # nothing half-written


def test_other_bad_invocations(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "norun")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "norun" in err and "\n" not in err
    assert main(["nonsense"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["datasets", "info", "hopper-mediun-v2"]) == 2
    assert "hopper-medium-v2" in capsys.readouterr().err


def test_agents_and_datasets_listings(capsys):
    assert main(["agents"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith(" ")}
    assert {"bc", "td3bc"} <= set(lines)
    assert "paper: Fujimoto & Gu 2021" in out
    assert main(["datasets", "list"]) == 0
    assert "hopper-medium-v2" in capsys.readouterr().out


@pytest.mark.parametrize("command", [[], ["train"], ["eval"], ["agents"], ["datasets"], ["datasets", "list"]])
def test_help_on_every_command(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: offreg") and ("options" in out or "COMMAND" in out)


def test_the_module_entry_point_sets_the_exit_status(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "offreg.cli", "train", "--agent", "nope", "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown agent 'nope'")
    script = Path(sys.executable).parent / "offreg"  # the console script `pip install` puts next to python
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == f"offreg {offreg.__version__}"


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["agents"]])
def test_help_version_and_agents_import_no_jax(argv):
    """Issue 13: the first commands a user types must not pay for importing JAX (seconds)."""
    code = (
        "import sys\nfrom offreg.cli import main\ntry:\n    status = main(sys.argv[1:])\n"
        "except SystemExit as e:\n    status = e.code\n"
        "print('JAX LOADED' if 'jax' in sys.modules else 'NO JAX', file=sys.stderr)\nsys.exit(status)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip()
    assert proc.stderr.strip().splitlines()[-1] == "NO JAX"


def test_datasets_list_says_cached_for_a_built_bundled_dataset(tmp_path, monkeypatch, capsys):
    """Issue 16 item 15: a bundled dataset already in the cache is ``cached``, not ``bundled``."""
    from offreg.data.loader import generated_path

    monkeypatch.setenv("OFFREG_DATA_DIR", str(tmp_path))
    path = generated_path("hopper-medium-replay-v0")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"0" * 1024)
    assert main(["datasets", "list"]) == 0
    status = {line.split()[0]: line.split()[3] for line in capsys.readouterr().out.splitlines()[1:] if line.strip()}
    assert status["offreg/hopper-medium-replay-v0"] == "cached"
    assert status["offreg/hopper-medium-v0"] == "bundled"


def _read_only(monkeypatch, folder):
    """Make ``folder`` behave as on a read-only file system for this process (tests run as root,
    where chmod denies nothing): os.access says no and creating anything inside raises EROFS."""
    import errno
    import os

    real_access, real_mkdir, real_mkstemp = os.access, Path.mkdir, __import__("tempfile").mkstemp

    def inside(path):
        return str(Path(path).absolute()).startswith(str(folder))

    def access(path, mode, **kw):
        return False if inside(path) and mode & os.W_OK else real_access(path, mode, **kw)

    def mkdir(self, *args, **kw):
        if inside(self):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kw)

    def mkstemp(*args, dir=None, **kw):
        if dir is not None and inside(dir):
            raise OSError(errno.EROFS, "Read-only file system", str(dir))
        return real_mkstemp(*args, dir=dir, **kw)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr("tempfile.mkstemp", mkstemp)


def test_train_into_a_read_only_folder_fails_before_any_work(tmp_path, data_file, monkeypatch, capsys):
    """Issue 16 item 3: the run directory's folder is checked before the dataset is loaded."""
    import offreg.engine.driver as driver

    readonly = tmp_path / "readonly"
    readonly.mkdir()
    _read_only(monkeypatch, readonly)
    loads, load = [], driver.load_dataset
    monkeypatch.setattr(driver, "load_dataset", lambda *a, **k: (loads.append(a), load(*a, **k))[1])
    code = main(["train", "--agent", "bc", "--dataset", str(data_file), "--steps", "2", *TINY,
                 "--out", str(readonly / "runs" / "x"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and loads == [] and not list(readonly.iterdir())
    assert err.startswith("error: cannot write the run directory") and err.count("\n") == 1 and "--out" in err


def test_an_os_error_in_any_command_is_one_line(tmp_path, monkeypatch, capsys):
    import offreg.data

    def disk_gone():
        raise OSError(5, "Input/output error", str(tmp_path / "cache"))

    monkeypatch.setattr(offreg.data, "catalogue_rows", disk_gone)
    assert main(["datasets", "list"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: Input/output error ({tmp_path / 'cache'}); check the path, its permissions and the " \
                  "free disk space\n"
