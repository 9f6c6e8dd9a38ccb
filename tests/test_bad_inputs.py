"""Bad input through the whole command line: every case exits non-zero with one ``error:`` line last,
no traceback, and changes nothing on disk.

Each case runs in-process through :func:`offreg.cli.main` (a few through a real ``python -m
offreg.cli`` process). For each: exit status != 0; the final stderr line starts with ``error:``
and is the only ``error:`` line (other lines may only be ``warning:``/``note:`` lines or progress
bars); no ``Traceback``; and the input folder (with the run directory the cases share), the
``--out`` folder and both dataset caches (``OFFREG_DATA_DIR``, ``D4RL_DATASET_DIR``, empty
temporary folders here) hold exactly the same files, with the same sizes and modification times,
before and after. Placeholders in the arguments (``{DATA}``, ``{RUN}``, ...) name the inputs the
``inputs`` fixture writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from d4rl_files import write_d4rl_file

from offreg.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:dataset .* has .* rows but the catalogue expects")

TINY = ["--set", "hidden_dims=[8]", "--set", "batch_size=16"]
TRAIN = ["train", "--agent", "bc", "--dataset", "{DATA}", "--steps", "2", *TINY, "--out", "{OUT}", "--quiet"]


def _train(*args: str, base: list[str] = TRAIN) -> list[str]:
    """``TRAIN`` with ``args`` replacing or adding flags (a flag followed by ``None`` is dropped)."""
    argv = list(base)
    i = 0
    while i < len(args):
        flag, value = args[i], args[i + 1] if i + 1 < len(args) else None
        if flag.startswith("--") and flag in argv and flag != "--set":
            j = argv.index(flag)
            if value is None:
                del argv[j : j + 2]
            else:
                argv[j + 1] = value
            i += 2
        else:
            argv.append(flag)
            i += 1
    return argv


CASES: dict[str, list[str]] = {
    # --- train: names ---
    "train-unknown-agent": _train("--agent", "nope"),
    "train-agent-wrong-case": _train("--agent", "TD3BC"),
    "train-unknown-dataset": _train("--dataset", "nope-v2"),
    "train-dataset-typo": _train("--dataset", "hopper-mediun-v2"),
    "train-unknown-offreg-dataset": _train("--dataset", "offreg/nope-v0"),
    "train-unknown-minari-dataset": _train("--dataset", "minari/nope-v0"),
    # --- train: dataset files ---
    "train-missing-file": _train("--dataset", "{MISSING}.hdf5"),
    "train-dataset-is-directory": _train("--dataset", "{DIR}"),
    "train-dataset-is-text": _train("--dataset", "{TXT}"),
    "train-garbage-hdf5": _train("--dataset", "{GARBAGE_H5}"),
    "train-truncated-hdf5": _train("--dataset", "{TRUNC_H5}"),
    "train-empty-hdf5": _train("--dataset", "{EMPTY_H5}"),
    "train-hdf5-without-rewards": _train("--dataset", "{NOREWARDS_H5}"),
    "train-hdf5-with-nan": _train("--dataset", "{NAN_H5}"),
    "train-hdf5-rows-mismatch": _train("--dataset", "{SHAPES_H5}"),
    "train-hdf5-string-actions": _train("--dataset", "{STRINGS_H5}"),
    # --- train: numbers ---
    "train-negative-steps": _train("--steps", "-1"),
    "train-steps-not-int": _train("--steps", "abc"),
    "train-steps-float": _train("--steps", "1.5"),
    "train-steps-missing-value": [*_train("--steps", None), "--steps"],
    "train-zero-seeds": _train("--seeds", "0"),
    "train-negative-seeds": _train("--seeds", "-2"),
    "train-seed-not-int": _train("--seed", "abc"),
    "train-negative-eval-every": _train("--eval-every", "-5"),
    "train-eval-every-not-multiple": _train("--eval-every", "15", "--log-every", "10"),
    "train-zero-eval-episodes": _train("--eval-episodes", "0"),
    "train-zero-log-every": _train("--log-every", "0"),
    "train-negative-log-every": _train("--log-every", "-3"),
    "train-zero-checkpoint-every": _train("--checkpoint-every", "0"),
    "train-negative-checkpoint-every": _train("--checkpoint-every", "-10"),
    "train-checkpoint-every-not-multiple": _train("--checkpoint-every", "7", "--log-every", "2"),
    # --- train: --set ---
    "set-without-equals": _train("--set", "hidden_dims"),
    "set-empty-key": _train("--set", "=5"),
    "set-unknown-field": _train("--set", "nosuch=1"),
    "set-field-typo": _train("--set", "hiden_dims=[8]"),
    "set-value-not-number": _train("--set", "lr=fast"),
    "set-unclosed-list": _train("--set", "hidden_dims=[8"),
    "set-zero-batch": _train("--set", "batch_size=0"),
    "set-negative-batch": _train("--set", "batch_size=-16"),
    "set-float-batch": _train("--set", "batch_size=1.5"),
    "set-zero-width": _train("--set", "hidden_dims=[0]"),
    "set-bool-not-bool": _train("--set", "normalize_observations=maybe"),
    "set-other-agents-field": _train("--set", "beta=2.0"),
    "set-unknown-activation": _train("--set", "activation=nope"),
    "set-unknown-init": _train("--set", "init=nope"),
    # --- train: --config ---
    "config-missing": _train("--config", "{MISSING}.json"),
    "config-bad-json": _train("--config", "{BAD_JSON}"),
    "config-json-list": _train("--config", "{LIST_JSON}"),
    "config-bad-toml": _train("--config", "{BAD_TOML}"),
    "config-directory": _train("--config", "{DIR}"),
    "config-unknown-field": _train("--config", "{UNKNOWN_FIELD_JSON}"),
    "config-bad-value": _train("--config", "{BAD_VALUE_JSON}"),
    # --- train: --out and --resume ---
    "out-existing-run": _train("--out", "{RUN}"),
    "out-is-a-file": _train("--out", "{TXT}"),
    "out-under-a-file": _train("--out", "{TXT}/run"),
    "resume-missing": ["train", "--resume", "{MISSING}", "--quiet"],
    "resume-not-a-run": ["train", "--resume", "{DIR}", "--quiet"],
    "resume-a-file": ["train", "--resume", "{DATA}", "--quiet"],
    "resume-with-agent": ["train", "--resume", "{RUN}", "--agent", "bc", "--quiet"],
    "resume-with-set": ["train", "--resume", "{RUN}", "--set", "lr=1", "--quiet"],
    "resume-with-out": ["train", "--resume", "{RUN}", "--out", "{OUT}", "--quiet"],
    "resume-fewer-steps": ["train", "--resume", "{RUN}", "--steps", "1", "--quiet"],
    "resume-negative-steps": ["train", "--resume", "{RUN}", "--steps", "-4", "--quiet"],
    "resume-broken-config": ["train", "--resume", "{BROKEN_RUN}", "--quiet"],
    "train-tensorboard-missing": _train("--tensorboard"),
    "train-wandb-missing": _train("--wandb", "project"),
    # --- flags and commands ---
    "train-unknown-flag": _train("--nosuch", "1"),
    "train-positional": [*TRAIN, "extra"],
    "unknown-command": ["nonsense"],
    "unknown-top-flag": ["--nosuch"],
    # --- eval ---
    "eval-missing": ["eval", "{MISSING}"],
    "eval-empty-dir": ["eval", "{DIR}"],
    "eval-text-file": ["eval", "{TXT}"],
    "eval-garbage-checkpoint": ["eval", "{BAD_CKPT}"],
    "eval-truncated-checkpoint": ["eval", "{TRUNC_CKPT}"],
    "eval-no-environment": ["eval", "{NOINFO_CKPT}"],
    "eval-zero-episodes": ["eval", "{RUN}", "--episodes", "0"],
    "eval-episodes-not-int": ["eval", "{RUN}", "--episodes", "x"],
    "eval-no-argument": ["eval"],
    "eval-negative-episodes": ["eval", "{RUN}", "--episodes", "-3"],
    # --- datasets ---
    "datasets-no-subcommand": ["datasets"],
    "datasets-unknown-subcommand": ["datasets", "nosuch"],
    "datasets-info-unknown": ["datasets", "info", "nope-v2"],
    "datasets-info-missing-file": ["datasets", "info", "{MISSING}.hdf5"],
    "datasets-info-garbage": ["datasets", "info", "{GARBAGE_H5}"],
    "datasets-info-directory": ["datasets", "info", "{DIR}"],
    "datasets-download-unknown": ["datasets", "download", "nope-v2"],
    "datasets-download-path": ["datasets", "download", "../../etc/passwd"],
    "datasets-download-minari": ["datasets", "download", "minari/nope-v0"],
    "datasets-download-no-name": ["datasets", "download"],
    # --- collect ---
    "collect-unknown-env": ["collect", "--env", "walker", "--out", "{OUT}"],
    "collect-no-env": ["collect", "--out", "{OUT}"],
    "collect-unknown-level": ["collect", "--env", "hopper", "--levels", "nosuch", "--out", "{OUT}"],
    "collect-hidden-not-ints": ["collect", "--env", "hopper", "--hidden", "abc", "--out", "{OUT}"],
    "collect-zero-width": ["collect", "--env", "hopper", "--hidden", "0", "--out", "{OUT}"],
    "collect-zero-chunk": ["collect", "--env", "hopper", "--chunk", "0", "--out", "{OUT}"],
    "collect-negative-start-steps": ["collect", "--env", "hopper", "--start-steps", "-1", "--out", "{OUT}"],
    "collect-negative-train-steps": ["collect", "--env", "hopper", "--train-steps", "-5", "--out", "{OUT}"],
    "collect-zero-level-steps": ["collect", "--env", "hopper", "--level-steps", "0", "--out", "{OUT}"],
    "collect-fraction-above-one": ["collect", "--env", "hopper", "--medium-fraction", "2", "--out", "{OUT}"],
    "collect-zero-envs": ["collect", "--env", "hopper", "--num-envs", "0", "--out", "{OUT}"],
    "collect-out-is-a-file": ["collect", "--env", "hopper", "--out", "{TXT}"],
    # --- leaderboard ---
    "leaderboard-no-subcommand": ["leaderboard"],
    "leaderboard-run-no-agents": ["leaderboard", "run", "--datasets", "{DATA}", "--out", "{OUT}"],
    "leaderboard-unknown-agent": ["leaderboard", "run", "--agents", "nope", "--datasets", "{DATA}", "--out", "{OUT}"],
    "leaderboard-unknown-dataset": ["leaderboard", "run", "--agents", "bc", "--datasets", "nope-v2", "--out", "{OUT}"],
    "leaderboard-zero-seeds": ["leaderboard", "run", "--agents", "bc", "--datasets", "{DATA}", "--seeds", "0",
                               "--out", "{OUT}"],
    "leaderboard-negative-steps": ["leaderboard", "run", "--agents", "bc", "--datasets", "{DATA}", "--steps", "-1",
                                   "--out", "{OUT}"],
    "leaderboard-bad-set": ["leaderboard", "run", "--agents", "bc", "--datasets", "{DATA}", "--set", "nosuch",
                            "--out", "{OUT}"],
    "leaderboard-bad-dataset-option": ["leaderboard", "run", "--agents", "bc", "--datasets", "{DATA}",
                                       "--dataset-option", "noeq", "--out", "{OUT}"],
    "leaderboard-unknown-executor": ["leaderboard", "run", "--agents", "bc", "--datasets", "{DATA}",
                                     "--executor", "nope", "--out", "{OUT}"],
    "leaderboard-unknown-agent-field": ["leaderboard", "run", "--agents", "bc", "--datasets", "{DATA}", "--set",
                                        "bc.nosuch=1", "--out", "{OUT}"],
    "leaderboard-unknown-dataset-option": ["leaderboard", "run", "--agents", "bc", "--datasets", "{DATA}",
                                           "--dataset-option", "nosuch=1", "--out", "{OUT}"],
    "train-config-bad-dataset-option": _train("--config", "{BAD_OPTION_RUN_JSON}"),
    "leaderboard-report-missing": ["leaderboard", "report", "{MISSING}"],
    "leaderboard-report-empty-dir": ["leaderboard", "report", "{DIR}"],
    "leaderboard-report-a-run": ["leaderboard", "report", "{RUN}"],
    "leaderboard-report-bad-format": ["leaderboard", "report", "{DIR}", "--format", "pdf"],
}


def _h5(path: Path, **arrays) -> Path:
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f[k] = v
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The files and folders the cases name, and one finished tiny run (``{RUN}``)."""
    base = tmp_path_factory.mktemp("bad_inputs")
    data = base / "hopper_medium-v2.hdf5"
    write_d4rl_file(data, "hopper", n_episodes=3, max_episode_steps=20)
    rng = np.random.default_rng(0)
    n = 50
    good = dict(observations=rng.normal(size=(n, 11)).astype(np.float32),
                actions=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
                rewards=rng.normal(size=n).astype(np.float32), terminals=np.zeros(n, bool),
                timeouts=np.zeros(n, bool))
    nan_obs = good["observations"].copy()
    nan_obs[3, 2] = np.nan
    (base / "dir").mkdir()
    paths = {
        "DATA": data,
        "MISSING": base / "missing",
        "DIR": base / "dir",
        "TXT": base / "notes.txt",
        "GARBAGE_H5": base / "garbage.hdf5",
        "TRUNC_H5": base / "truncated.hdf5",
        "EMPTY_H5": base / "empty.hdf5",
        "NOREWARDS_H5": _h5(base / "norewards.hdf5", **{k: v for k, v in good.items() if k != "rewards"}),
        "NAN_H5": _h5(base / "nan.hdf5", **{**good, "observations": nan_obs}),
        "SHAPES_H5": _h5(base / "shapes.hdf5", **{**good, "actions": good["actions"][:-5]}),
        "STRINGS_H5": _h5(base / "strings.hdf5", **{**good, "actions": np.array([b"a"] * n)}),
        "BAD_JSON": base / "bad.json",
        "LIST_JSON": base / "list.json",
        "BAD_TOML": base / "bad.toml",
        "UNKNOWN_FIELD_JSON": base / "unknown.json",
        "BAD_VALUE_JSON": base / "badvalue.json",
        "BAD_OPTION_RUN_JSON": base / "badoption.json",
        "BAD_CKPT": base / "garbage.msgpack",
        "TRUNC_CKPT": base / "truncated.msgpack",
        "NOINFO_CKPT": base / "noinfo.msgpack",
        "RUN": base / "run",
        "BROKEN_RUN": base / "broken_run",
        "OUT": base / "out" / "run",
    }
    paths["TXT"].write_text("not a dataset\n")
    paths["GARBAGE_H5"].write_bytes(b"\x89HDF\r\n\x1a\nthis is not really hdf5" * 10)
    paths["TRUNC_H5"].write_bytes(data.read_bytes()[: data.stat().st_size // 3])
    paths["EMPTY_H5"].write_bytes(b"")
    paths["BAD_JSON"].write_text("{not json")
    paths["LIST_JSON"].write_text("[1, 2]")
    paths["BAD_TOML"].write_text("alpha = = 2")
    paths["UNKNOWN_FIELD_JSON"].write_text(json.dumps({"nosuch": 1}))
    paths["BAD_VALUE_JSON"].write_text(json.dumps({"lr": "many"}))
    paths["BAD_OPTION_RUN_JSON"].write_text(json.dumps({"agent": "bc", "agent_config": {}, "dataset_options": {
        "nosuch": 1}}))
    assert main(["train", "--agent", "bc", "--dataset", str(data), "--steps", "4", "--eval-every", "0", *TINY,
                 "--out", str(paths["RUN"]), "--quiet"]) == 0
    import offreg
    from offreg.checkpoint import latest_checkpoint

    ckpt = latest_checkpoint(paths["RUN"]).read_bytes()
    paths["BAD_CKPT"].write_bytes(b"\x00garbage" * 20)
    paths["TRUNC_CKPT"].write_bytes(ckpt[: len(ckpt) // 2])
    offreg.save_agent(offreg.load_agent(paths["RUN"]), paths["NOINFO_CKPT"])
    paths["BROKEN_RUN"].mkdir()
    (paths["BROKEN_RUN"] / "config.json").write_text('{"agent": "bc"')
    (base / "out").mkdir()
    return base, {k: str(v) for k, v in paths.items()}


@pytest.fixture()
def caches(tmp_path, monkeypatch):
    """Empty dataset caches, so nothing a case writes there can hide among real files."""
    roots = []
    for var in ("OFFREG_DATA_DIR", "D4RL_DATASET_DIR", "MINARI_DATASETS_PATH"):
        root = tmp_path / var.lower()
        root.mkdir()
        monkeypatch.setenv(var, str(root))
        roots.append(root)
    return roots


def _snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*")):
            st = p.lstat()
            out[str(p)] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out


def _check_stderr(err: str) -> None:
    assert "Traceback" not in err, err
    lines = [x for x in err.replace("\r", "\n").splitlines() if x.strip()]
    assert lines and lines[-1].startswith("error: "), err
    assert sum(x.startswith("error") for x in lines) == 1, err
    for x in lines[:-1]:
        assert x.startswith(("warning: ", "note: ")) or "%|" in x, err


def _fill(argv: list[str], paths: dict[str, str]) -> list[str]:
    return [a.format(**paths) for a in argv]


@pytest.mark.parametrize("argv", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_one_error_line_and_changes_nothing(argv, inputs, caches, capsys, monkeypatch):
    base, paths = inputs
    monkeypatch.chdir(base / "dir")  # a default ./runs/... would appear here
    before = _snapshot(base, *caches)
    code = main(_fill(argv, paths))
    err = capsys.readouterr().err
    assert code not in (0, None), err
    _check_stderr(err)
    assert _snapshot(base, *caches) == before


def test_there_are_at_least_80_distinct_cases():
    assert len(CASES) >= 80 and len({tuple(v) for v in CASES.values()}) == len(CASES)


@pytest.mark.parametrize("case", ["train-unknown-agent", "resume-not-a-run", "datasets-info-garbage",
                                  "unknown-top-flag"])
def test_bad_input_in_a_real_process(case, inputs, caches):
    base, paths = inputs
    before = _snapshot(base, *caches)
    env = {**os.environ, "OFFREG_DATA_DIR": str(caches[0]), "D4RL_DATASET_DIR": str(caches[1]),
           "MINARI_DATASETS_PATH": str(caches[2])}
    proc = subprocess.run([sys.executable, "-m", "offreg.cli", *_fill(CASES[case], paths)], capture_output=True,
                          text=True, timeout=300, cwd=base / "dir", env=env)
    assert proc.returncode == 2, proc.stderr
    _check_stderr(proc.stderr)
    assert _snapshot(base, *caches) == before
