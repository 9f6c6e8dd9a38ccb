"""The leaderboard: local and Ray executors agree, reruns skip or resume, the report's numbers equal an
independent NumPy/SciPy computation from the raw results, every run is listed, bad invocations fail clearly."""

import ast
import csv
import graphlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from d4rl_files import write_d4rl_file

from offreg import cli
from offreg.errors import ConfigError, DatasetError, UnknownNameError
from offreg.leaderboard.board import load_leaderboard, read_reference_scores
from offreg.leaderboard.report import write_report
from offreg.leaderboard.results import job_id, make_result, read_result, write_result
from offreg.leaderboard.runner import MatrixSpec, _write_matrix, run_matrix

# D4RL's Hopper reference returns (random, expert), as in d4rl/infos.py: score 0 and 100
HOPPER_REF = (-20.272305, 3234.3)
TINY = {"bc": {"hidden_dims": "[8]"}, "td3bc": {"actor_hidden_dims": "[8]", "critic_hidden_dims": "[8]"}}


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny-hopper.hdf5"
    write_d4rl_file(path, env="hopper", n_episodes=6, max_episode_steps=30)
    return str(path)


def _spec(tiny_file, agents=("bc", "td3bc")):
    return MatrixSpec(
        agents=agents, datasets=(tiny_file,), seeds=(0, 1), steps=20, eval_every=10, eval_episodes=2,
        eval_max_steps=10, log_every=10, overrides={"*": {"batch_size": 16}, **{a: TINY[a] for a in agents}},
        dataset_options={"env": "hopper"},
    )


@pytest.fixture(scope="module")
def local_run(tiny_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    outcome = run_matrix(_spec(tiny_file), out, progress=False)
    assert outcome.failed == {} and len(outcome.completed) == 2
    return out


@pytest.fixture(scope="module")
def ray_instance():
    import ray  # in the test extra: the Ray test is never skipped

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def _evaluations(out, agent, dataset):
    doc = read_result(out / "results" / f"{job_id(agent, dataset)}.json")
    return doc, [(e["step"], e["seed"], e["returns"]) for e in doc["evaluations"]]


# --- run ------------------------------------------------------------------------------------------
def test_results_file_is_self_describing(local_run, tiny_file):
    doc, evals = _evaluations(local_run, "td3bc", tiny_file)
    assert doc["status"] == "complete" and doc["step"] == 20 and doc["seeds"] == [0, 1]
    # evaluations at steps 10 and 20 for both seeds, 2 episodes each
    assert [(s, seed) for s, seed, _ in evals] == [(10, 0), (10, 1), (20, 0), (20, 1)]
    lo, hi = HOPPER_REF
    for e in doc["evaluations"]:
        assert len(e["returns"]) == 2
        np.testing.assert_allclose(e["scores"], 100 * (np.array(e["returns"]) - lo) / (hi - lo), rtol=1e-6)
    assert doc["config"]["agent_config"]["actor_hidden_dims"] == [8]
    assert doc["config"]["steps"] == 20 and doc["config"]["eval_episodes"] == 2
    assert {"jax", "offreg", "python"} <= set(doc["versions"])
    assert doc["hardware"]["cpu_count"] >= 1 and doc["hardware"]["memory_gib"] > 0
    assert doc["wall_time_s"] > 0 and doc["attempts"] == 1 and doc["executor"] == "local"
    # the per-seed means equal the engine's own metrics.jsonl records
    records = [json.loads(x) for x in (local_run / "runs" / job_id("td3bc", tiny_file) / "metrics.jsonl").open()]
    engine = {(r["step"], r["seed"]): r["score_mean"] for r in records if r["kind"] == "eval"}
    for e in doc["evaluations"]:
        assert np.mean(e["scores"]) == pytest.approx(engine[(e["step"], e["seed"])], rel=1e-9)


def test_local_and_ray_give_the_same_results(local_run, tiny_file, ray_instance, tmp_path):
    outcome = run_matrix(_spec(tiny_file), tmp_path, executor="ray", progress=False)
    assert outcome.failed == {} and sorted(outcome.completed) == sorted(job_id(a, tiny_file) for a in ("bc", "td3bc"))
    for agent in ("bc", "td3bc"):
        doc_ray, ray_evals = _evaluations(tmp_path, agent, tiny_file)
        _, local_evals = _evaluations(local_run, agent, tiny_file)
        assert doc_ray["executor"] == "ray"
        assert [x[:2] for x in ray_evals] == [x[:2] for x in local_evals]
        for (_, _, a), (_, _, b) in zip(ray_evals, local_evals, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6)


def test_rerun_skips_complete_jobs(local_run, tiny_file):
    before = {p.name: p.stat().st_mtime_ns for p in (local_run / "results").iterdir()}
    outcome = run_matrix(_spec(tiny_file), local_run, progress=False)
    assert outcome.completed == []
    assert sorted(outcome.skipped) == sorted(job_id(a, tiny_file) for a in ("bc", "td3bc"))
    assert {p.name: p.stat().st_mtime_ns for p in (local_run / "results").iterdir()} == before


def test_interrupted_job_resumes_from_its_checkpoint(local_run, tiny_file, tmp_path):
    def crash(step, agents, records):
        if step == 10:  # after the step-10 evaluation and checkpoint
            raise RuntimeError("simulated crash")

    spec = _spec(tiny_file, agents=("bc",))
    outcome = run_matrix(spec, tmp_path, progress=False, callback=crash)
    jid = job_id("bc", tiny_file)
    assert "simulated crash" in outcome.failed[jid]
    assert read_result(tmp_path / "results" / f"{jid}.json")["status"] == "failed"
    assert sorted(p.name for p in (tmp_path / "runs" / jid / "checkpoints").iterdir()) == ["step_000000010.msgpack"]

    seen = []
    outcome = run_matrix(spec, tmp_path, progress=False, callback=lambda step, agents, records: seen.append(step))
    assert outcome.completed == [jid] and seen == [20]  # continued at step 10, did not start over
    doc, evals = _evaluations(tmp_path, "bc", tiny_file)
    assert doc["status"] == "complete" and doc["attempts"] == 2
    _, uninterrupted = _evaluations(local_run, "bc", tiny_file)
    assert [x[:2] for x in evals] == [x[:2] for x in uninterrupted]
    for (_, _, a), (_, _, b) in zip(evals, uninterrupted, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_report_of_a_real_run_equals_numpy(local_run, tiny_file, tmp_path):
    write_report(local_run, ["csv"], out=tmp_path, reps=200)
    rows = {r["agent"]: r for r in csv.DictReader((tmp_path / "leaderboard.csv").open())}
    lo, hi = HOPPER_REF
    for agent in ("bc", "td3bc"):
        doc = json.loads((local_run / "results" / f"{job_id(agent, tiny_file)}.json").read_text())
        finals = [np.mean(100 * (np.array(e["returns"]) - lo) / (hi - lo)) for e in doc["evaluations"]
                  if e["step"] == 20]
        assert float(rows[agent]["final_mean"]) == pytest.approx(np.mean(finals), rel=1e-9)
        assert float(rows[agent]["final_std"]) == pytest.approx(np.std(finals), rel=1e-6, abs=1e-12)


# --- report on synthetic results ------------------------------------------------------------------
def write_synthetic(out, agents=("bc", "odice"), datasets=("offreg/hopper-medium-v0", "hopper-medium-v2",
                    "walker2d-medium-v2"), seeds=(0, 1, 2, 3, 4), skip=(), fail=(), rng_seed=0):
    """A leaderboard directory with hand-made results (reference scores 0/100, so score == return).

    Returns ``{(agent, dataset): array [n_evals, n_seeds, episodes]}`` of the returns written.
    """
    rng = np.random.default_rng(rng_seed)
    spec = MatrixSpec(agents=tuple(agents), datasets=tuple(datasets), seeds=tuple(seeds), steps=300,
                      eval_every=100, eval_episodes=3)
    _write_matrix(out, spec)
    truth = {}
    for i, a in enumerate(agents):
        for d in datasets:
            if (a, d) in skip:
                continue
            path = out / "results" / f"{job_id(a, d)}.json"
            if (a, d) in fail:
                write_result(path, make_result(agent=a, dataset=d, seeds=seeds, steps=300, status="failed",
                                               error="DatasetError: boom"))
                continue
            returns = rng.normal(40 + 20 * i, 15, size=(3, len(seeds), 3))
            truth[(a, d)] = returns
            evals = [{"step": 100 * (t + 1), "seed": s, "returns": returns[t, j].tolist(),
                      "scores": returns[t, j].tolist()} for t in range(3) for j, s in enumerate(seeds)]
            write_result(path, make_result(
                agent=a, dataset=d, seeds=seeds, steps=300, step=300, status="complete", evaluations=evals,
                dataset_info={"name": d, "ref_min_score": 0.0, "ref_max_score": 100.0}, wall_time_s=1.0))
    return truth


def _bootstrap(table, statistic, reps, seed=0):
    """Stratified percentile bootstrap written out independently (same resampling order as documented)."""
    rng = np.random.default_rng(seed)
    keys = list(table)
    stats = [statistic({k: table[k][rng.integers(0, table[k].size, table[k].size)] for k in keys})
             for _ in range(reps)]
    return np.percentile(stats, [2.5, 97.5])


def test_aggregation_equals_independent_computation(tmp_path):
    truth = write_synthetic(tmp_path)
    write_report(tmp_path, ["csv"], out=tmp_path / "rep", reps=500)
    rows = {(r["agent"], r["dataset"]): r for r in csv.DictReader((tmp_path / "rep" / "leaderboard.csv").open())}
    aggs = {r["agent"]: r for r in csv.DictReader((tmp_path / "rep" / "leaderboard_aggregate.csv").open())}
    for (a, d), returns in truth.items():
        final = returns[-1].mean(axis=1)  # last evaluation, mean over episodes, per seed
        best = returns.mean(axis=2).max(axis=0)
        r = rows[(a, d)]
        assert float(r["final_mean"]) == pytest.approx(final.mean(), rel=1e-9)
        assert float(r["final_std"]) == pytest.approx(np.std(final, ddof=0), rel=1e-9)
        assert float(r["best_mean"]) == pytest.approx(best.mean(), rel=1e-9)
    for a in ("bc", "odice"):
        table = {d: truth[(a, d)][-1].mean(axis=1) for (aa, d) in truth if aa == a}
        pooled = np.concatenate(list(table.values()))
        assert float(aggs[a]["iqm"]) == pytest.approx(scipy.stats.trim_mean(pooled, 0.25), rel=1e-9)
        assert float(aggs[a]["mean"]) == pytest.approx(np.mean([v.mean() for v in table.values()]), rel=1e-9)
        lo, hi = _bootstrap(table, lambda t: scipy.stats.trim_mean(np.concatenate(list(t.values())), 0.25), 500)
        assert float(aggs[a]["iqm_ci_low"]) == pytest.approx(lo, rel=1e-9)
        assert float(aggs[a]["iqm_ci_high"]) == pytest.approx(hi, rel=1e-9)
        assert int(aggs[a]["runs"]) == 15


def test_report_lists_every_run_and_flags_missing_ones(tmp_path):
    write_synthetic(tmp_path, skip={("bc", "walker2d-medium-v2")}, fail={("odice", "hopper-medium-v2")})
    written = write_report(tmp_path, ["md", "csv"], out=tmp_path / "rep", reps=100)
    md = written["leaderboard.md"].read_text()
    runs = md.split("## Every run")[1]
    for a in ("bc", "odice"):
        for d in ("offreg/hopper-medium-v0", "hopper-medium-v2", "walker2d-medium-v2"):
            assert f"| {a} | {d} |" in runs
    assert "| bc | walker2d-medium-v2 | MISSING |" in runs
    assert "| odice | hopper-medium-v2 | FAILED |" in runs and "DatasetError: boom" in runs
    rows = {(r["agent"], r["dataset"]): r for r in csv.DictReader(written["leaderboard.csv"].open())}
    assert len(rows) == 6 and rows[("bc", "walker2d-medium-v2")]["status"] == "missing"
    # the aggregate says over how many datasets: bc has 2 of 3
    assert "| bc | 2/3 | 10 |" in md
    # papers' scores: O-DICE on D4RL hopper-medium-v2 is comparable, on offreg's generated data it is not
    ref = md.split("## Papers' reported scores")[1].split("## Every run")[0]
    assert "| odice | offreg/hopper-medium-v0 |" in ref and "NO: offreg-generated data" in ref
    assert "| odice | walker2d-medium-v2 |" in ref and "84.9 ± 2.3" in ref and "| yes |" in ref
    assert list((tmp_path / "rep").glob("*.png"))


def test_reference_scores_file_is_well_formed():
    board_refs = read_reference_scores()
    assert len(board_refs) >= 20
    assert all(r["source"] and np.isfinite(r["score"]) for r in board_refs)
    assert {r["agent"] for r in board_refs} >= {"a2pr", "prdc", "odice", "td3bc"}


# --- bad invocations ------------------------------------------------------------------------------
def _cli(capsys, *argv):
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


def test_unknown_agent_and_dataset_give_suggestions(capsys, tmp_path):
    code, err = _cli(capsys, "leaderboard", "run", "--agents", "td3bx,bc", "--datasets", "offreg/hopper-medium-v0",
                     "--out", str(tmp_path / "a"))
    assert code == 2 and "unknown agent 'td3bx'; did you mean 'td3bc'" in err
    code, err = _cli(capsys, "leaderboard", "run", "--agents", "bc", "--datasets", "offreg/hoper-medium-v0",
                     "--out", str(tmp_path / "a"))
    assert code == 2 and "unknown dataset 'offreg/hoper-medium-v0'; did you mean 'offreg/hopper-medium-v0'" in err
    with pytest.raises(DatasetError, match="does not exist"):
        run_matrix(MatrixSpec(agents=("bc",), datasets=(str(tmp_path / "nope.hdf5"),)), tmp_path / "a")
    with pytest.raises(UnknownNameError):
        run_matrix(MatrixSpec(agents=("bcc",), datasets=("offreg/hopper-medium-v0",)), tmp_path / "a")
    assert not (tmp_path / "a").exists()  # nothing written for a bad invocation


@pytest.mark.parametrize(("option", "message"), [
    (["--set", "td3bc.nosuch=1"],
     "--set for agent 'td3bc' on offreg/hopper-medium-replay-v0: unknown TD3Config field 'nosuch'"),
    (["--set", "td3bc.alpha=abc"],
     "--set for agent 'td3bc' on offreg/hopper-medium-replay-v0: TD3Config.alpha must be float"),
    (["--set", "batch_size=0"],
     "--set for agent 'bc' on offreg/hopper-medium-replay-v0: BCConfig.batch_size must be positive"),
    (["--set", "alph=2.5"],
     "unknown config field 'alph'; did you mean 'alpha'? No agent in --agents ['bc', 'td3bc'] has it"),
    (["--sweep", "bc:alpha=1,2"], "--sweep for agent 'bc': agent 'bc' has no coefficients to sweep"),
    (["--sweep", "nosuch=1,2"], "--sweep nosuch: no agent in --agents ['bc', 'td3bc'] sweeps it"),
    (["--sweep", "odice:lambda=0.4"], "--sweep is given for agent 'odice', which is not in --agents ['bc', 'td3bc']"),
    (["--sweep", "td3bc:alpha=1,x"], "--sweep alpha: values must be numbers separated by commas"),
])
def test_bad_set_or_sweep_fails_before_any_job_or_file(capsys, tmp_path, option, message):
    out = tmp_path / "lb"
    out.mkdir()
    code = cli.main(["leaderboard", "run", "--agents", "bc,td3bc", "--datasets", "offreg/hopper-medium-replay-v0",
                     "--steps", "10", "--eval-every", "10", "--eval-episodes", "1", "--eval-max-steps", "5",
                     *option, "--out", str(out)])
    captured = capsys.readouterr()
    last = captured.err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("error: ") and message in last
    assert captured.out == "" and list(out.iterdir()) == []  # no job started, no matrix, no results


def test_unreachable_ray_address_fails_fast(capsys, tmp_path):
    tic = time.perf_counter()
    code, err = _cli(capsys, "leaderboard", "run", "--agents", "bc", "--datasets", "offreg/hopper-medium-v0",
                     "--executor", "ray", "--address", "127.0.0.1:9", "--out", str(tmp_path / "a"))
    assert code == 2 and "Ray address '127.0.0.1:9' is unreachable" in err
    assert time.perf_counter() - tic < 30 and not (tmp_path / "a").exists()
    code, err = _cli(capsys, "leaderboard", "run", "--agents", "bc", "--datasets", "offreg/hopper-medium-v0",
                     "--address", "127.0.0.1:9", "--out", str(tmp_path / "a"))
    assert code == 2 and "--address is only used with --executor ray" in err


def test_bad_report_invocations(capsys, tmp_path):
    code, err = _cli(capsys, "leaderboard", "report", str(tmp_path))
    assert code == 2 and "is not a leaderboard directory" in err
    write_synthetic(tmp_path)
    code, err = _cli(capsys, "leaderboard", "report", str(tmp_path), "--format", "md,pdf")
    assert code == 2 and "unknown report format 'pdf'" in err
    with pytest.raises(ConfigError, match="seeds=.*use the same settings"):
        _write_matrix(tmp_path, MatrixSpec(agents=("bc",), datasets=("hopper-medium-v2",), seeds=(0,), steps=300,
                                           eval_every=100, eval_episodes=3))


def test_cli_report_writes_every_format(capsys, tmp_path):
    write_synthetic(tmp_path)
    code, _ = _cli(capsys, "leaderboard", "report", str(tmp_path), "--reps", "50")
    assert code == 0
    names = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"leaderboard.md", "leaderboard.csv", "leaderboard_aggregate.csv", "leaderboard.html",
            "learning_curves.png", "iqm.png", "performance_profile.png"} <= names
    board = load_leaderboard(tmp_path, reps=50)
    assert len(board.entries) == 6 and all(e.status == "complete" for e in board.entries)


# --- structure ------------------------------------------------------------------------------------
def test_leaderboard_modules_import_downward_at_module_level():
    """board -> plots/html -> report, no cycle; offreg's own modules are imported at module level only."""
    import offreg.leaderboard

    graph, late = {}, []
    for path in sorted(Path(offreg.leaderboard.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text())
        top = set(tree.body)
        deps = set()
        for node in ast.walk(tree):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name.startswith("offreg"):
                    if node not in top:
                        late.append(f"{path.name}: {name}")
                    if name.startswith("offreg.leaderboard."):
                        deps.add(name.removeprefix("offreg.leaderboard."))
        graph[path.stem] = deps
    assert late == []
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a cycle
    assert "report" not in graph["html"] and "report" not in graph["plots"] and "report" not in graph["board"]
    assert order.index("board") < order.index("html") < order.index("report")


def _drawn_tick_labels(axis):
    """The tick labels matplotlib draws: those of ticks inside the view (it keeps others, undrawn)."""
    lo, hi = sorted(axis.get_view_interval())
    eps = 1e-9 * (hi - lo)
    return [t.label1 for t, x in zip(axis.get_major_ticks(), axis.get_majorticklocs(), strict=False)
            if lo - eps <= x <= hi + eps]


def test_learning_curves_text_never_overlaps_across_panels(tmp_path):
    """Titles, axis labels and tick labels of different panels (and the figure title) do not intersect,
    measured with matplotlib's own text extents after a draw, for 3 agents x 5 datasets."""
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from offreg.leaderboard.plots import learning_curves_figure

    datasets = ("offreg/halfcheetah-medium-replay-v0", "offreg/walker2d-medium-expert-v0", "hopper-medium-v2",
                "walker2d-medium-replay-v2", "offreg/hopper-random-v0")
    write_synthetic(tmp_path, agents=("bc", "td3bc", "odice"), datasets=datasets, seeds=(0, 1))
    fig = learning_curves_figure(load_leaderboard(tmp_path, reps=10))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    suptitle = next(t for t in fig.findobj(Text) if t.get_text().startswith("Learning curves"))
    boxes = [("figure", suptitle.get_window_extent(renderer))]
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert len(panels) == 5
    for i, ax in enumerate(panels):
        texts = [ax.title, ax.xaxis.label, ax.yaxis.label, ax.xaxis.offsetText, ax.yaxis.offsetText,
                 *_drawn_tick_labels(ax.xaxis), *_drawn_tick_labels(ax.yaxis)]
        boxes += [(i, t.get_window_extent(renderer)) for t in texts if t.get_visible() and t.get_text()]
    plt.close(fig)
    clashes = [(a, b) for k, (a, box_a) in enumerate(boxes) for b, box_b in boxes[k + 1:]
               if a != b and box_a.overlaps(box_b)]
    assert clashes == []


# --- sweeps ---------------------------------------------------------------------------------------
def test_sweep_trains_one_job_and_reports_each_point(local_run, tiny_file, tmp_path):
    out = tmp_path / "lb"
    code = cli.main(["leaderboard", "run", "--agents", "td3bc", "--datasets", tiny_file, "--seeds", "2",
                     "--steps", "20", "--eval-every", "10", "--eval-episodes", "2", "--eval-max-steps", "10",
                     "--log-every", "10", "--set", "batch_size=16", "--set", "td3bc.actor_hidden_dims=[8]",
                     "--set", "td3bc.critic_hidden_dims=[8]", "--dataset-option", "env=hopper",
                     "--sweep", "td3bc:alpha=1,2.5", "--out", str(out), "--quiet"])
    assert code == 0
    assert [p.name for p in (out / "results").iterdir()] == [f"{job_id('td3bc', tiny_file)}.json"]  # one job
    doc = read_result(out / "results" / f"{job_id('td3bc', tiny_file)}.json")
    assert doc["sweep"] == {"alpha": [1.0, 2.5]}
    # the alpha=2.5 point is the unswept run (alpha's default) of the same seeds
    _, plain = _evaluations(local_run, "td3bc", tiny_file)
    point = [(e["step"], e["seed"], e["returns"]) for e in doc["evaluations"] if e["sweep"] == {"alpha": 2.5}]
    assert [x[:2] for x in point] == [x[:2] for x in plain]
    for (_, _, a), (_, _, b) in zip(point, plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4)
    write_report(out, ["csv", "md"], out=tmp_path / "rep", reps=100)
    rows = {r["agent"]: r for r in csv.DictReader((tmp_path / "rep" / "leaderboard.csv").open())}
    assert set(rows) == {"td3bc[alpha=1]", "td3bc[alpha=2.5]"}
    for value in (1.0, 2.5):
        final = [np.mean(e["scores"]) for e in doc["evaluations"] if e["sweep"] == {"alpha": value} and e["step"] == 20]
        assert len(final) == 2
        assert float(rows[f"td3bc[alpha={value:g}]"]["final_mean"]) == pytest.approx(np.mean(final), rel=1e-9)


def test_sweep_point_is_comparable_with_the_paper_only_at_the_preset(tmp_path):
    from offreg.agents.presets import resolve_config

    config = resolve_config("odice", "hopper-medium-v2", {})
    preset, other = float(config.lambda_), float(config.lambda_) + 0.1
    evals = [{"step": 100, "seed": 0, "returns": [50.0], "scores": [50.0], "sweep": {"lambda_": v}}
             for v in (preset, other)]
    _write_matrix(tmp_path, MatrixSpec(agents=("odice",), datasets=("hopper-medium-v2",), seeds=(0,), steps=100,
                                       eval_every=100, sweeps={"odice": {"lambda": [preset, other]}}))
    write_result(tmp_path / "results" / f"{job_id('odice', 'hopper-medium-v2')}.json", make_result(
        agent="odice", dataset="hopper-medium-v2", seeds=[0], steps=100, step=100, status="complete",
        sweep={"lambda_": [preset, other]}, evaluations=evals, config={"agent_config": config.to_dict()},
        dataset_info={"ref_min_score": 0.0, "ref_max_score": 100.0}))
    board = load_leaderboard(tmp_path, reps=10)
    at, off = board.entry(f"odice[lambda={preset:g}]", "hopper-medium-v2"), board.entry(
        f"odice[lambda={other:g}]", "hopper-medium-v2")
    assert at.reference is not None and at.comparable and at.status == "complete"
    assert off.reference is not None and not off.comparable and "away from the preset" in off.not_comparable
    assert [e.agent for e in board.entries] == [at.agent, off.agent]  # no stray 'missing' row for the base name


def test_jobs_take_the_presets_evaluation_settings_unless_given(tmp_path):
    """AntMaze's preset (BC: every 5000 steps and at the end, 100 episodes) reaches a leaderboard job that does
    not set --eval-every/--eval-episodes."""
    from offreg.data.generate.antmaze import write_antmaze_hdf5

    path = write_antmaze_hdf5(tmp_path / "Ant_maze_u-maze_noisy_multistart_False_multigoal_False_sparse_fixed.hdf5",
                              "umaze", steps=200, episode_steps=100)
    spec = MatrixSpec(agents=("bc",), datasets=(str(path),), seeds=(0,), steps=10, eval_max_steps=2, log_every=10,
                      overrides={"bc": {"hidden_dims": "[8]", "batch_size": 16}})
    outcome = run_matrix(spec, tmp_path / "lb", progress=False)
    assert outcome.failed == {}
    doc = read_result(tmp_path / "lb" / "results" / f"{job_id('bc', str(path))}.json")
    assert doc["config"]["eval_every"] == 5000 and doc["config"]["eval_episodes"] == 100
    assert [(e["step"], len(e["returns"])) for e in doc["evaluations"]] == [(10, 100)]
