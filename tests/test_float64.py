"""Every agent in float64 mode: ``jax_enable_x64`` on, the agent and the data cast to float64.

x64 is a process-global flag, so the checks run in a subprocess and never leak into other tests.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from offreg.agents.base import is_gradient_free
from offreg.agents.names import registry

TESTS = Path(__file__).parent

SCRIPT = textwrap.dedent("""
    import sys

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    sys.path.insert(0, sys.argv[1])
    from test_agent_contract import _dataset

    from offreg.agents.base import is_gradient_free
    from offreg.agents.names import registry
    from offreg.agents.neighbour_index import build_index
    from offreg.agents.neighbours import nearest
    from offreg.data.loader import load_dataset
    from offreg.engine import dataset_context, scan_updates


    def f64(tree):
        return jax.tree_util.tree_map(lambda x: x.astype(jnp.float64) if x.dtype == jnp.float32 else x, tree)


    def floats(tree):
        return [x for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]


    # --- PRDC's search on float64 keys against a NumPy float64 scan (dataset rows and other states)
    rng = np.random.default_rng(0)
    states, actions = rng.normal(size=(3000, 5)).astype(np.float32), rng.uniform(-1, 1, (3000, 2)).astype(np.float32)
    qs = np.concatenate([states[:48], states[48:64] + 0.05]).astype(np.float64)
    qa = rng.uniform(-1, 1, (64, 2))
    beta = 2.0
    res = jax.jit(nearest)(build_index(states, actions, leaf_size=4), beta, jnp.asarray(qs), jnp.asarray(qa))
    d = ((np.hstack([beta * states, actions])[None] - np.hstack([beta * qs, qa])[:, None]) ** 2).sum(-1)
    assert res.dist_sq.dtype == np.float64, res.dist_sq.dtype
    np.testing.assert_array_equal(np.asarray(res.row), d.argmin(1))
    np.testing.assert_allclose(np.asarray(res.dist_sq), d.min(1), rtol=1e-12)
    assert not np.asarray(res.certified).all()  # the fallback scans ran too

    # --- a few updates of every agent
    for name in sys.argv[2:]:
        spec = registry()[name]
        envs = getattr(spec.agent_cls, "requires_env", ())
        dataset = load_dataset(f"offreg/{envs[0]}-v0") if envs else _dataset()
        config = spec.default_config().replace(batch_size=32)
        prepared = config.prepare(dataset)
        context = dataset_context(spec.agent_cls, config, prepared)
        agent = f64(spec.agent_cls.create(config, prepared, jax.random.PRNGKey(0), context))
        if not is_gradient_free(spec.agent_cls):
            before = floats(agent)
            agent, _, metrics = jax.jit(scan_updates, static_argnums=3)(
                agent, f64(prepared.transitions), jax.random.PRNGKey(1), 3, f64(context))
            assert all(np.isfinite(np.asarray(m)).all() for m in floats(metrics)), name
            assert any(not np.array_equal(a, b) for a, b in zip(before, floats(agent))), f"{name}: nothing updated"
        params = floats(agent)
        assert params and all(p.dtype == jnp.float64 for p in params), f"{name}: {[p.dtype for p in params]}"
        assert all(np.isfinite(np.asarray(p)).all() for p in params), name
        acts = agent.act(jnp.asarray(dataset.transitions.observations[:4], jnp.float64))
        assert np.isfinite(np.asarray(acts)).all(), name
        print(name, "ok")
""")


def _run(names, tmp_path):
    env = dict(os.environ, OFFREG_DATA_DIR=str(tmp_path), PYTHONPATH=os.pathsep.join(
        [str(TESTS.parent), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(TESTS), *names], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.split() == [w for n in names for w in (n, "ok")]


@pytest.mark.slow
def test_prdc_search_and_updates_in_float64(tmp_path):
    """The failure the float32 scan carries caused: PRDC's search and updates in float64 mode."""
    _run(["prdc"], tmp_path)


@pytest.mark.slow  # every agent's compile in float64: ~40 s; `python -m pytest -m slow tests/test_float64.py`
def test_every_agent_updates_in_float64(tmp_path):
    _run(sorted(n for n, s in registry().items() if not is_gradient_free(s.agent_cls)) + ["r2pvi-chi2"], tmp_path)
