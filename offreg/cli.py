"""The ``offreg`` command: parse, call the library, print.

Every subcommand is one ``add_<name>(subparsers)`` function registered with :func:`subcommand`: it
adds its parser and sets ``run=<function(args) -> exit code>``. Errors a user can cause
(:class:`~offreg.errors.OffregError`, bad arguments) print one line ``error: <message>`` on stderr
and exit with status 2; a diverged training run exits with 1. An
:class:`~offreg.errors.OffregWarning` (accepted but suspicious input) prints one line ``warning: <message>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from offreg.defaults import DEFAULT_AGENT, DEFAULT_DATASET, DEFAULT_EVAL_EPISODES, DEFAULT_EVAL_EVERY, DEFAULT_STEPS
from offreg.errors import ConfigError, EnvironmentError_, OffregError, OffregWarning, TrainingError
from offreg.tables import text_table

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

@dataclasses.dataclass(frozen=True)
class _Command:
    help: str
    description: str
    run: Callable[[argparse.Namespace], int] | None  # None: a group of subcommands
    arguments: Callable[[argparse.ArgumentParser], None] | None


COMMANDS: dict[str, _Command] = {}
"""Subcommands by path (``"train"``, ``"datasets list"``), in the order ``offreg --help`` lists them."""


def command(
    name: str, help: str, description: str, arguments: Callable[[argparse.ArgumentParser], None] | None = None
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register the decorated ``run(args) -> exit code`` as the subcommand ``name`` (``"datasets list"``:
    ``list`` under the group ``datasets``, see :func:`group`); ``arguments(parser)`` adds its options."""
    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = _Command(help, description, run, arguments)
        return run
    return register


def group(name: str, help: str, description: str) -> None:
    """Register ``name`` as a group of subcommands (``offreg datasets list|info|download``)."""
    COMMANDS[name] = _Command(help, description, None, None)


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``error: offreg train: ...``) instead of usage + exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


# --- train ----------------------------------------------------------------------------------------
def train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--agent", help=f"agent name, see 'offreg agents' (default {DEFAULT_AGENT})")
    p.add_argument("--dataset", help=f"dataset name or D4RL-format file (default {DEFAULT_DATASET})")
    p.add_argument("--steps", type=int, help=f"gradient updates per seed (default {DEFAULT_STEPS:,})")
    p.add_argument("--seeds", type=int, help="number of seeds trained together with vmap (default 1)")
    p.add_argument("--seed", type=int, help="first seed (default 0): seeds are seed, seed+1, ...")
    p.add_argument("--eval-every", type=int,
                   help=f"evaluate every N steps, 0 = off (default: the agent's preset for the dataset, else "
                        f"{DEFAULT_EVAL_EVERY})")
    p.add_argument("--eval-episodes", type=int,
                   help=f"episodes per evaluation, the last one included (default: the preset's, else "
                        f"{DEFAULT_EVAL_EPISODES})")
    p.add_argument("--log-every", type=int, help="updates per jitted chunk and per log record (default 1000)")
    p.add_argument("--checkpoint-every", type=int, help="checkpoint every N steps (default: --eval-every)")
    p.add_argument("--config", metavar="FILE", help="JSON/TOML file of agent config fields, or a run's config.json")
    p.add_argument(
        "--set", metavar="KEY=VALUE", action="append", default=[],
        help="set an agent config field, e.g. --set alpha=2.5 --set actor_hidden_dims=[64,64] (repeatable)",
    )
    p.add_argument(
        "--sweep", metavar="COEF=V1,V2,...", action="append", default=[],
        help="train every value of a sweepable coefficient (e.g. --sweep lambda=0.4,0.6,0.8) for every seed in "
        "one compiled program (repeatable: the grid of all)",
    )
    p.add_argument("--out", metavar="DIR", help="run directory to create (default runs/<agent>-<dataset>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its newest checkpoint")
    p.add_argument("--tensorboard", action="store_true", help="also log to RUN_DIR/tensorboard (offreg[tb])")
    p.add_argument("--wandb", metavar="PROJECT", help="also log to this W&B project (offreg[wandb])")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_set(items: Sequence[str]) -> dict[str, str]:
    """``["alpha=2.5", ...]`` -> ``{"alpha": "2.5"}``; values are parsed later by the config class.

    Raises:
      ConfigError: an item without ``=`` or with an empty key.
    """
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}; e.g. --set alpha=2.5")
        out[key] = value.strip()
    return out


def parse_sweep(items: Sequence[str]) -> dict[str, list[float]]:
    """``["lambda=0.4,0.6"]`` -> ``{"lambda": [0.4, 0.6]}``.

    Raises:
      ConfigError: an item without ``=``, an empty key, a repeated key or a value that is not a number.
    """
    out: dict[str, list[float]] = {}
    for item in items:
        key, eq, values = item.partition("=")
        key = key.strip()
        if not eq or not key or key in out:
            raise ConfigError(f"--sweep expects COEF=V1,V2,... once per coefficient, got {item!r}; "
                              "e.g. --sweep lambda=0.4,0.6")
        try:
            out[key] = [float(v) for v in values.split(",")]
        except ValueError:
            raise ConfigError(f"--sweep {key}: values must be numbers separated by commas, got {values!r}") from None
    return out


def read_config_file(path: str) -> dict[str, Any]:
    """Read a ``--config`` file (JSON, or TOML by its ``.toml`` suffix) into a dict.

    Raises:
      ConfigError: missing or unparsable file, or not a mapping.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {path} does not exist; check the --config path")
    try:
        if p.suffix == ".toml":
            import tomllib

            doc = tomllib.loads(p.read_text())
        else:
            doc = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid {p.suffix.lstrip('.') or 'JSON'}: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"config file {path} must hold a mapping of config fields")
    return doc


def _default_out(agent: str, dataset: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", Path(dataset).stem if Path(dataset).suffix else dataset).strip("_")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return str(Path("runs") / f"{agent}-{slug}-{stamp}")


@command(
    "train", "train an agent on a dataset (one or several seeds)",
    "Train an agent on a dataset. Writes a run directory with config.json, dataset_info.json, "
    "metrics.jsonl, checkpoints/, curve.png and summary.json.", train_arguments,
)
def cmd_train(args: argparse.Namespace) -> int:
    from offreg.engine import train  # loads JAX: only when a command needs it

    overrides = parse_set(args.set)
    sweep = parse_sweep(args.sweep)
    if args.resume:
        given = [f for f in ("agent", "dataset", "seeds", "seed", "eval_every", "eval_episodes", "log_every",
                             "checkpoint_every", "config", "out", "sweep") if getattr(args, f) not in (None, [])]
        if given or overrides:
            flag = "--" + (given[0].replace("_", "-") if given else "set")
            raise ConfigError(f"{flag} cannot be combined with --resume, which uses the run's own settings")
        result = train(
            resume=args.resume, steps=args.steps, progress=not args.quiet,
            tensorboard=args.tensorboard, wandb_project=args.wandb,
        )
    else:
        file_cfg: dict[str, Any] = read_config_file(args.config) if args.config else {}
        run_cfg = file_cfg if "agent_config" in file_cfg else {}
        agent_fields = run_cfg.get("agent_config", file_cfg)
        agent = args.agent or run_cfg.get("agent") or DEFAULT_AGENT
        dataset = args.dataset or run_cfg.get("dataset") or DEFAULT_DATASET

        def pick(flag: Any, key: str, default: Any) -> Any:
            return flag if flag is not None else run_cfg.get(key, default)

        seeds = args.seeds if args.seeds is not None else (
            len(run_cfg["seeds"]) if "seeds" in run_cfg else 1
        )
        seed = args.seed if args.seed is not None else (run_cfg["seeds"][0] if "seeds" in run_cfg else 0)
        result = train(
            agent,
            dataset,
            steps=pick(args.steps, "steps", None),
            seeds=seeds,
            seed=seed,
            eval_every=pick(args.eval_every, "eval_every", None),
            eval_episodes=pick(args.eval_episodes, "eval_episodes", None),
            final_eval_episodes=None if args.eval_episodes is not None else run_cfg.get("final_eval_episodes"),
            log_every=pick(args.log_every, "log_every", None),
            checkpoint_every=pick(args.checkpoint_every, "checkpoint_every", None),
            overrides={**agent_fields, **overrides},
            dataset_options=run_cfg.get("dataset_options"),
            sweep=sweep or run_cfg.get("sweep"),
            out_dir=args.out or _default_out(agent, dataset),
            progress=not args.quiet,
            tensorboard=args.tensorboard,
            wandb_project=args.wandb,
        )
    _print_summary(result.summary, result.run_dir)
    return EXIT_OK


def _fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _print_summary(summary: dict[str, Any], run_dir: Path | None) -> None:
    print(f"{summary['agent']} on {summary['dataset']}: {summary['step']:,} steps, {summary['wall_time_s']:.1f} s")
    sweep = list(summary.get("sweep", {}))
    rows = [[*sweep, "seed", "final return", "final score", "best score", "best step"]]
    for p in summary["per_seed"]:
        best_step = "-" if p["best_step"] is None else str(p["best_step"])
        rows.append([*(f"{p['sweep'][k]:g}" for k in sweep), str(p["seed"]), _fmt(p["final_return"]),
                     _fmt(p["final_score"]), _fmt(p["best_score"]), best_step])
    print(text_table(rows))
    for p in summary.get("per_point", []):
        if p["final_score_mean"] is not None:
            where = ", ".join(f"{k}={v:g}" for k, v in p["sweep"].items())
            print(f"{where}: final normalized score {p['final_score_mean']:.1f} +- {p['final_score_std']:.1f} "
                  f"(mean +- std over {len(summary['seeds'])} seeds)")
    mean, seeds = summary["final_score_mean"], len(summary["seeds"])
    if summary.get("per_point"):
        return
    if mean is not None and seeds == 1:
        print(f"final normalized score: {mean:.1f}")
    elif mean is not None:
        std = summary["final_score_std"]
        print(f"final normalized score: {mean:.1f} +- {std:.1f} (mean +- std over {seeds} seeds)")
    if run_dir is not None:
        print(f"run directory: {run_dir}")


# --- eval -----------------------------------------------------------------------------------------
def eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory (or checkpoint file)")
    p.add_argument("--episodes", type=int, default=10, help="episodes per seed (default 10)")


@command(
    "eval", "evaluate a run's newest checkpoint (every seed) in its environment",
    "Evaluate the newest checkpoint of RUN_DIR (or a checkpoint file) for every seed, print "
    "returns and normalized scores, and write RUN_DIR/eval.json.", eval_arguments,
)
def cmd_eval(args: argparse.Namespace) -> int:
    from offreg.atomic import atomic_write_text
    from offreg.checkpoint import read_checkpoint
    from offreg.engine import eval_seed

    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    ckpt = read_checkpoint(args.run_dir)
    info = ckpt.dataset_info
    if info is None or info.env_id is None:
        name = "unknown" if info is None else repr(info.name)
        raise EnvironmentError_(
            f"checkpoint {ckpt.path} was trained on dataset {name}, which names no environment to evaluate in"
        )
    from offreg.evaluation import evaluate

    runs = ckpt.runs()
    sweep = list(runs[0][0])
    rows = [[*sweep, "seed", "return mean", "return std", "score mean", "score std"]]
    out = []
    for index, (point, s) in enumerate(runs):
        res = evaluate(ckpt.run_agent(index), info, episodes=args.episodes, seed=eval_seed(s or 0, ckpt.step))
        import numpy as np

        ret = np.asarray(res.returns, np.float64)
        sc = None if res.normalized is None else np.asarray(res.normalized, np.float64)
        rec = {
            "seed": s, **({"sweep": point} if point else {}), "step": ckpt.step,
            "return_mean": float(ret.mean()), "return_std": float(ret.std()),
            "score_mean": None if sc is None else float(sc.mean()),
            "score_std": None if sc is None else float(sc.std()), "returns": [float(x) for x in ret],
        }
        out.append(rec)
        rows.append([*(f"{point[k]:g}" for k in sweep), "-" if s is None else str(s), _fmt(rec["return_mean"]),
                     _fmt(rec["return_std"]), _fmt(rec["score_mean"]), _fmt(rec["score_std"])])
    print(f"{ckpt.agent_name} at step {ckpt.step:,} on {info.name}, {args.episodes} episodes per seed")
    print(text_table(rows))
    run_dir = Path(args.run_dir)
    if run_dir.is_dir():
        doc = {"checkpoint": str(ckpt.path), "episodes": args.episodes, "per_seed": out}
        atomic_write_text(run_dir / "eval.json", json.dumps(doc, indent=2) + "\n")
    return EXIT_OK


# --- agents ---------------------------------------------------------------------------------------
@command("agents", "list the agents and their papers", "List the registered agents.")
def cmd_agents(args: argparse.Namespace) -> int:
    from offreg.agents.names import registry

    for name, spec in sorted(registry().items()):
        print(f"{name:<12} {spec.description}")
        print(f"{'':<12} paper: {spec.paper}")
    return EXIT_OK


# --- datasets -------------------------------------------------------------------------------------
group("datasets", "list, describe or download datasets", "List, describe or download datasets.")


@command("datasets list", "the dataset catalogue", "List every known dataset.")
def cmd_datasets_list(args: argparse.Namespace) -> int:
    from offreg import data

    print(data.format_table(data.catalogue_rows()))
    return EXIT_OK


@command("datasets info", "describe one dataset", "Describe one dataset.",
         lambda p: p.add_argument("name", help="dataset name or file"))
def cmd_datasets_info(args: argparse.Namespace) -> int:
    from offreg import data

    info = data.dataset_summary(args.name)
    fmt = getattr(data, "format_summary", None)
    print(fmt(info) if fmt is not None else json.dumps(info, indent=2, default=str))
    return EXIT_OK


@command("datasets download", "download a dataset into the cache", "Download a dataset into the cache.",
         lambda p: p.add_argument("name", help="dataset name"))
def cmd_datasets_download(args: argparse.Namespace) -> int:
    from offreg import data

    path = data.download_dataset(args.name)
    print(path)
    return EXIT_OK


# --- collect --------------------------------------------------------------------------------------
def collect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", required=True, help="environment: hopper, halfcheetah, walker2d, ant, ...")
    p.add_argument("--levels", help="comma-separated levels (default: all five, "
                   "random,medium,medium-replay,expert,medium-expert)")
    p.add_argument("--out", required=True, help="output directory for <env>-<level>.hdf5 and snapshots/")
    p.add_argument("--train-steps", type=int, default=300_000, help="SAC environment steps (default: 300000)")
    p.add_argument("--level-steps", type=int, default=1_000_000,
                   help="rows per rollout level (default: 1000000, D4RL's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--medium-fraction", type=float, default=1.0 / 3.0,
                   help="medium = first snapshot reaching this fraction of D4RL's expert return, else of the "
                   "trained expert's (default: 1/3)")
    p.add_argument("--snapshot-every", type=int, default=10_000, help="environment steps between snapshots")
    p.add_argument("--eval-episodes", type=int, default=10, help="episodes per snapshot evaluation")
    p.add_argument("--num-envs", type=int, default=10, help="environments stepped in lockstep in rollouts")
    p.add_argument("--start-steps", type=int, help="uniform-action steps before SAC updates (default: SACConfig's)")
    p.add_argument("--chunk", type=int, help="environment steps per collect/update phase (default: SACConfig's)")
    p.add_argument("--hidden", default="256,256", help="hidden widths of SAC's networks (default: 256,256)")


@command(
    "collect", "generate D4RL-style datasets: train SAC, roll out its snapshots",
    "Train a SAC behaviour policy on a Gymnasium MuJoCo task and write D4RL-format HDF5 files "
    "(random, medium, medium-replay, expert, medium-expert) following D4RL's recipe.", collect_arguments,
)
def cmd_collect(args: argparse.Namespace) -> int:
    from offreg.data.generate.collect import LEVELS, collect  # loads JAX: only when a command needs it
    from offreg.data.generate.sac import SACConfig

    try:
        hidden = tuple(int(h) for h in str(args.hidden).split(",") if h.strip())
    except ValueError:
        raise ConfigError(f"--hidden {args.hidden!r} must be comma-separated integers, e.g. 256,256") from None
    if not hidden or min(hidden) <= 0:
        raise ConfigError(f"--hidden {args.hidden!r} must be positive widths, e.g. 256,256")
    for name in ("start_steps", "chunk"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "start_steps" else 1):
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value}")
    given = {k: getattr(args, k) for k in ("start_steps", "chunk") if getattr(args, k) is not None}
    collect(
        args.env, args.levels or LEVELS, args.out, train_steps=args.train_steps, level_steps=args.level_steps,
        seed=args.seed, medium_fraction=args.medium_fraction, snapshot_every=args.snapshot_every,
        eval_episodes=args.eval_episodes, num_envs=args.num_envs, config=SACConfig(hidden_dims=hidden, **given),
        command=" ".join(["offreg", *sys.argv[1:]]),
    )
    return EXIT_OK


# --- leaderboard ----------------------------------------------------------------------------------
group("leaderboard", "run agents x datasets x seeds and report the comparison",
      "Run a leaderboard matrix (locally or on Ray) and write its report (md, csv, html).")


def leaderboard_run_arguments(r: argparse.ArgumentParser) -> None:
    r.add_argument("--agents", required=True, help="comma-separated agent names, e.g. a2pr,prdc,odice,td3bc,bc")
    r.add_argument("--datasets", required=True, help="comma-separated dataset names or D4RL-format files")
    r.add_argument("--seeds", type=int, default=5, help="seeds per job: seed, seed+1, ... (default 5)")
    r.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    r.add_argument("--steps", type=int, default=1_000_000, help="gradient updates per seed (default 1,000,000)")
    r.add_argument("--eval-every", type=int, help="evaluation period in steps (default: each agent's preset for the "
                   "dataset, else 5000)")
    r.add_argument("--eval-episodes", type=int, help="episodes per evaluation and seed (default: the preset's, e.g. "
                   "100 at the end on AntMaze, else 10)")
    r.add_argument("--eval-max-steps", type=int, help="cap episode length at evaluation (smoke runs only)")
    r.add_argument("--log-every", type=int, help="updates per jitted chunk (default: the engine's)")
    r.add_argument("--checkpoint-every", type=int, help="checkpoint period (default: --eval-every)")
    r.add_argument(
        "--set", metavar="[AGENT.]KEY=VALUE", action="append", default=[],
        help="agent config field for one agent (td3bc.alpha=2.5) or for every agent that has it "
        "(batch_size=64) (repeatable)",
    )
    r.add_argument("--dataset-option", metavar="KEY=VALUE", action="append", default=[],
                   help="load_dataset option for every dataset, e.g. env=hopper for a local file (repeatable)")
    r.add_argument(
        "--sweep", metavar="[AGENT:]COEF=V1,V2,...", action="append", default=[],
        help="a coefficient grid for one agent (odice:lambda=0.4,0.6) or for every agent that sweeps it "
        "(alpha=1,2.5): each job trains its grid for every seed in one program, each point a row of its own "
        "(repeatable)",
    )
    r.add_argument("--out", metavar="DIR", required=True, help="leaderboard directory (reuse it to continue)")
    r.add_argument("--executor", choices=("local", "ray"), default="local", help="where jobs run (default local)")
    r.add_argument("--address", help="Ray cluster address (host:port, ray://host:port, auto); default: start a "
                   "local Ray instance")
    r.add_argument("--cpus-per-job", type=float, default=1.0, help="CPUs each Ray task declares (default 1)")
    r.add_argument("--gpus-per-job", type=float, default=0.0, help="GPUs each Ray task declares (default 0)")
    r.add_argument("--quiet", action="store_true", help="no progress lines")


def leaderboard_report_arguments(rep: argparse.ArgumentParser) -> None:
    rep.add_argument("dir", metavar="DIR", help="the leaderboard directory (--out of leaderboard run)")
    rep.add_argument("--format", default="md,csv,html", help="comma-separated: md, csv, html (default all)")
    rep.add_argument("--out", metavar="DIR", help="where to write (default DIR/report)")
    rep.add_argument("--reference", metavar="CSV", help="papers' scores (default experiments/reference_scores.csv)")
    rep.add_argument("--reps", type=int, default=2000, help="bootstrap replicates (default 2000)")


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _agent_sweeps(items: Sequence[str]) -> dict[str, dict[str, list[float]]]:
    """``["odice:lambda=0.4,0.6", "alpha=1,2"]`` -> ``{"odice": {"lambda": [...]}, "*": {"alpha": [...]}}``."""
    by_agent: dict[str, list[str]] = {}
    for item in items:
        head, colon, rest = item.partition(":")
        agent, grid = (head.strip(), rest) if colon and "=" not in head else ("*", item)
        by_agent.setdefault(agent, []).append(grid)
    return {agent: parse_sweep(grid) for agent, grid in by_agent.items()}


@command(
    "leaderboard run", "train every agent on every dataset (seeds vmapped per job)",
    "Train every agent on every dataset, all seeds of a job together with vmap. Rerunning with "
    "the same --out skips finished jobs and resumes interrupted ones from their checkpoints.",
    leaderboard_run_arguments,
)
def cmd_leaderboard_run(args: argparse.Namespace) -> int:
    from offreg.leaderboard.runner import MatrixSpec, run_matrix

    overrides: dict[str, dict[str, str]] = {}
    for key, value in parse_set(args.set).items():
        agent, dot, field = key.rpartition(".")
        overrides.setdefault(agent if dot else "*", {})[field] = value
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    spec = MatrixSpec(
        agents=_names(args.agents), datasets=_names(args.datasets),
        seeds=tuple(range(args.seed, args.seed + args.seeds)), steps=args.steps, eval_every=args.eval_every,
        eval_episodes=args.eval_episodes, eval_max_steps=args.eval_max_steps, log_every=args.log_every,
        checkpoint_every=args.checkpoint_every, overrides=overrides,
        dataset_options=parse_set(args.dataset_option), sweeps=_agent_sweeps(args.sweep),
    )
    outcome = run_matrix(spec, args.out, executor=args.executor, address=args.address, num_cpus=args.cpus_per_job,
                         num_gpus=args.gpus_per_job, progress=not args.quiet)
    print(f"{len(outcome.completed)} job(s) ran, {len(outcome.skipped)} already complete, "
          f"{len(outcome.failed)} failed; results in {Path(args.out) / 'results'}")
    for jid, err in outcome.failed.items():
        print(f"failed: {jid}: {err}")
    print(f"report: offreg leaderboard report {args.out}")
    return EXIT_FAILED if outcome.failed else EXIT_OK


@command(
    "leaderboard report", "tables, statistics, plots and an HTML page from a leaderboard directory",
    "Write the report of a leaderboard directory: final and best scores, IQM with bootstrap CIs, "
    "performance profiles, learning curves and the papers' scores.", leaderboard_report_arguments,
)
def cmd_leaderboard_report(args: argparse.Namespace) -> int:
    from offreg.leaderboard.report import write_report

    written = write_report(args.dir, _names(args.format), out=args.out, reference=args.reference, reps=args.reps)
    for path in written.values():
        print(path)
    return EXIT_OK


# --- entry point ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The ``offreg`` parser with every registered subcommand."""
    from offreg import __version__

    parser = _Parser(
        prog="offreg",
        description="JAX offline RL with policy regularization toward the data: train, evaluate, compare.",
    )
    parser.add_argument("--version", action="version", version=f"offreg {__version__}")
    subparsers = {"": parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)}
    for name, c in COMMANDS.items():
        parent, _, leaf = name.rpartition(" ")
        p = subparsers[parent].add_parser(leaf, help=c.help, description=c.description)
        p.set_defaults(run=c.run or functools.partial(_missing_subcommand, p))
        if c.run is None:
            children = [n.rpartition(" ")[2] for n in COMMANDS if n.rpartition(" ")[0] == name]
            subparsers[name] = p.add_subparsers(dest=f"{name}_command", metavar="{" + ",".join(children) + "}",
                                                parser_class=_Parser)
        if c.arguments is not None:
            c.arguments(p)
    return parser


def _missing_subcommand(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    raise _UsageError(f"{parser.prog}: choose a subcommand (see '{parser.prog} --help')")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``offreg`` command line; returns the exit status."""
    with warnings.catch_warnings():  # restores the process's warning display afterwards
        python_show = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, OffregWarning):
                print("warning: " + " ".join(str(message).split()), file=sys.stderr)
            else:
                python_show(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "run", None) is None:
            parser.print_help()
            return EXIT_USAGE
        return int(args.run(args) or EXIT_OK)
    except _UsageError as e:
        _error(str(e))
        return EXIT_USAGE
    except TrainingError as e:
        _error(str(e))
        return EXIT_FAILED
    except OffregError as e:
        _error(str(e))
        return EXIT_USAGE
    except OSError as e:  # the disk, not the input: full, read-only, removed under a running command
        where = f" ({e.filename})" if e.filename else ""
        _error(f"{e.strerror or e}{where}; check the path, its permissions and the free disk space")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _error("interrupted; continue a training run with offreg train --resume RUN_DIR")
        return 130


def _error(message: str) -> None:
    print("error: " + " ".join(message.split()), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
