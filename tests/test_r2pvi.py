"""R2PVI, its baselines and its environments.

Golden values come from independent computations: the primal problems solved numerically by
SciPy, dense grid searches, a loop-by-loop NumPy port of the official backward induction, and the
environments' exact kernels.
"""

from __future__ import annotations

import dataclasses

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from offreg.agents import r2pvi as R
from offreg.agents import r2pvi_duals as D
from offreg.agents import r2pvi_model as M
from offreg.data import DatasetInfo, from_arrays
from offreg.data.generate import r2pvi as r2pvi_data
from offreg.envs import american_put, linear_mdp
from offreg.errors import ConfigError, DatasetError, EnvironmentError_

H = 3.0
LMDP = M.ModelSpec("linear-mdp", (("delta", 0.3), ("xi_norm", 0.2)))


# --- helpers -------------------------------------------------------------------------------------
def _x64(fn, *args, **kwargs):
    with jax.enable_x64(True):
        return jax.tree_util.tree_map(np.asarray, fn(*args, **kwargs))


def _random_instance(rng, n_states=6, zero_prob=True):
    p = rng.dirichlet(np.ones(n_states))
    if zero_prob:
        p[rng.integers(n_states)] = 0.0
        p /= p.sum()
    v = rng.uniform(0.0, H, n_states)
    return p, v


def _lmdp_dataset(n=100, seed=0, delta=0.3, xi_norm=0.2):
    """A flat linear-MDP dataset built the way the generated file is, without the loader."""
    arrays = r2pvi_data.linear_mdp_arrays(jax.random.PRNGKey(seed), n, delta, xi_norm)
    keep = ~arrays["timeouts"]
    info = DatasetInfo("lmdp-test", "offreg", "linear-mdp", linear_mdp.OBS_DIM, 1, 0,
                       extra={"metadata": {"delta": delta, "xi_norm": xi_norm}})
    return from_arrays(arrays["observations"][keep], arrays["actions"][keep], arrays["rewards"][keep],
                       arrays["next_observations"][keep], arrays["terminals"][keep], info)


@pytest.fixture(scope="module")
def lmdp_dataset():
    return _lmdp_dataset()


# --- duals against the primal problems (SciPy) ----------------------------------------------------
def _primal_tv(p, v, lam):
    # min_mu mu.v + lam/2 sum|mu - p|  as an LP in (mu, t), t >= |mu - p|
    n = len(p)
    c = np.concatenate([v, np.full(n, lam / 2)])
    eye = np.eye(n)
    a_ub = np.block([[eye, -eye], [-eye, -eye]])
    b_ub = np.concatenate([p, -p])
    a_eq = np.concatenate([np.ones(n), np.zeros(n)])[None]
    res = scipy.optimize.linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=[1.0], bounds=[(0, None)] * (2 * n))
    assert res.success
    return res.fun


def _primal_kl(p, v, lam):
    s = p > 0
    ps, vs = p[s], v[s]

    def f(x):
        mu = np.exp(x - x.max())
        mu /= mu.sum()
        return mu @ vs + lam * np.sum(mu * np.log(np.maximum(mu, 1e-300) / ps))

    res = scipy.optimize.minimize(f, np.log(ps), method="BFGS", options={"gtol": 1e-10})
    return res.fun


def _primal_chi2(p, v, lam):
    s = p > 0
    ps, vs = p[s], v[s]
    f = lambda mu: mu @ vs + lam * np.sum((mu / ps - 1.0) ** 2 * ps)
    res = scipy.optimize.minimize(f, ps, method="SLSQP", bounds=[(0, 1)] * len(ps),
                                  constraints=[{"type": "eq", "fun": lambda mu: mu.sum() - 1.0}],
                                  options={"ftol": 1e-14, "maxiter": 500})
    assert res.success
    return res.fun


@pytest.mark.parametrize("seed", range(6))
def test_duals_equal_numerical_primal(seed):
    rng = np.random.default_rng(seed)
    p, v = _random_instance(rng)
    lam = float(rng.uniform(0.2, 2.0))
    M, mask = p[None, :], np.ones_like(p)
    tv = _x64(D.tv_dual, M, v, mask, lam)[0]
    kl = _x64(D.kl_dual, M, v, mask, lam, H)[0]
    chi2 = _x64(D.chi2_dual, M, v, mask, lam, H)[0]
    np.testing.assert_allclose(tv, _primal_tv(p, v, lam), atol=1e-7)
    np.testing.assert_allclose(kl, _primal_kl(p, v, lam), atol=1e-6)
    np.testing.assert_allclose(chi2, _primal_chi2(p, v, lam), atol=1e-6)


def test_kl_dual_is_stable_for_small_lambda():
    # e^{-V/lambda} underflows in float64 for lambda = 1e-3; the dual tends to min V on the support
    p, v = np.array([0.5, 0.5, 0.0]), np.array([2.0, 2.5, 0.1])
    kl = _x64(D.kl_dual, p[None], v, np.ones(3), 1e-3, H)[0]
    ref = 2.0 - 1e-3 * np.log(0.5 + 0.5 * np.exp(-0.5 / 1e-3))
    np.testing.assert_allclose(kl, ref, rtol=1e-12)


# --- exact solvers against dense grids ------------------------------------------------------------
def _ridge_instance(rng, k=40, d=5):
    phi = rng.dirichlet(np.ones(d), size=k)
    M = np.linalg.solve(phi.T @ phi + 0.1 * np.eye(d), phi.T)  # ridge weights: not probabilities
    y = rng.uniform(-0.2, H + 0.2, k)  # values outside [0, H] happen without the floor at 0
    mask = (rng.uniform(size=k) > 0.2).astype(float)
    return M * mask, y, mask


@pytest.mark.parametrize("seed", range(4))
def test_chi2_exact_solver_equals_dense_grid(seed):
    rng = np.random.default_rng(seed)
    M, y, mask = _ridge_instance(rng)
    lam = float(rng.uniform(0.05, 1.0))
    w, alpha = _x64(D.chi2_dual, M, y, mask, lam, H, return_alpha=True)
    grid = np.linspace(0.0, H, 30001)
    trunc = np.minimum(y[None, :], grid[:, None])
    z, z2 = trunc @ M.T, trunc**2 @ M.T  # [G, d]
    g = z - (z2 - z**2) / (4 * lam)
    np.testing.assert_array_less(g.max(0) - 1e-9, w)  # never worse than the grid
    np.testing.assert_allclose(w, g.max(0), atol=2e-6)
    # the reported maximiser attains the value
    for i in range(M.shape[0]):
        t = np.minimum(y, alpha[i])
        zi, z2i = M[i] @ t, M[i] @ t**2
        np.testing.assert_allclose(zi - (z2i - zi**2) / (4 * lam), w[i], atol=1e-9)


@pytest.mark.parametrize("subtract_min", [False, True])
def test_drpvi_dual_equals_dense_grid(subtract_min):
    rng = np.random.default_rng(7)
    M, y, mask = _ridge_instance(rng)
    rho = rng.uniform(0.0, 0.5, M.shape[0])
    w = _x64(D.tv_constrained_dual, M, y, mask, rho, H, subtract_min)
    m = y[mask > 0].min() if subtract_min else 0.0
    alphas = np.concatenate([np.linspace(0, H, 20001), np.clip(y, 0, H)])
    g = np.minimum(y[None], alphas[:, None]) @ M.T - rho * (alphas[:, None] - m)
    np.testing.assert_allclose(w, g.max(0), atol=1e-10)


def test_drvil_dual_equals_dense_grid():
    rng = np.random.default_rng(3)
    M, y, mask = _ridge_instance(rng)
    y = np.clip(y, 0, H)
    rho = 0.1
    w = _x64(D.kl_constrained_dual, M, y, mask, rho, H)
    alphas = np.concatenate([np.geomspace(1e-6, H, 20001)])
    z = (np.exp(-y[None] / alphas[:, None]) - 1.0) @ M.T + 1.0
    g = -alphas[:, None] * np.log(np.maximum(z, 1e-6)) - alphas[:, None] * rho
    np.testing.assert_array_less(g.max(0) - 1e-9, w)
    # refine the dense grid's best point with SciPy's bounded Brent search
    ref = []
    for i in range(M.shape[0]):
        j = int(g[:, i].argmax())
        f = lambda a, i=i: -(-a * np.log(max(M[i] @ (np.exp(-y / a) - 1.0) + 1.0, 1e-6)) - a * rho)
        res = scipy.optimize.minimize_scalar(f, bounds=(alphas[max(j - 1, 0)], alphas[min(j + 1, len(alphas) - 1)]),
                                             method="bounded", options={"xatol": 1e-13})
        ref.append(max(-res.fun, g[j, i]))
    np.testing.assert_allclose(w, ref, atol=1e-6)


# --- targets of both signs (outside the paper's settings) against dense grids ------------------------
def _signed_instance(seed):
    """Ridge weights with targets of both signs: even seeds mostly negative, odd seeds mostly positive."""
    rng = np.random.default_rng(100 + seed)
    M, _, mask = _ridge_instance(rng, k=12, d=6)
    y = rng.uniform(-2.0, 1.0, 12) if seed % 2 == 0 else rng.uniform(-0.5, H + 0.5, 12)
    return rng, M, y, mask


@pytest.mark.parametrize("seed", range(8))
def test_truncation_duals_equal_dense_grid_with_signed_targets(seed):
    """alpha ranges over [0, H] however negative the targets: a negative target is never truncated."""
    rng, M, y, mask = _signed_instance(seed)
    rho, lam = rng.uniform(0.0, 0.5, M.shape[0]), float(rng.uniform(0.05, 1.0))
    alphas = np.concatenate([np.linspace(0.0, H, 30001), np.clip(y, 0.0, H)])  # the kinks included
    trunc = np.minimum(y[None, :], alphas[:, None])
    z, z2 = trunc @ M.T, trunc**2 @ M.T  # [G, d]
    m = y[mask > 0].min()
    for subtract_min in (False, True):
        w = _x64(D.tv_constrained_dual, M, y, mask, rho, H, subtract_min)
        shift = m if subtract_min else 0.0
        np.testing.assert_allclose(w, (z - rho * (alphas[:, None] - shift)).max(0), atol=1e-10)
    g = (z - (z2 - z**2) / (4 * lam)).max(0)
    w = _x64(D.chi2_dual, M, y, mask, lam, H)
    np.testing.assert_array_less(g - 1e-9, w)
    np.testing.assert_allclose(w, g, atol=2e-6)
    if seed % 2 == 0:
        assert (g < 0).any()  # the case a spurious candidate at alpha = 0 used to hide


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("lam", [0.005, 0.05, 0.5])
def test_kl_dual_equals_direct_formula_with_signed_targets(seed, lam):
    """``-lambda log max(M e^{-y/lambda}, e^{-H/lambda})`` evaluated as written (nothing over- or
    underflows in float64 for |y| <= 2, H = 3 and lambda >= 0.005): H where the ridge estimate is <= 0."""
    _, M, y, mask = _signed_instance(seed)
    z = M @ np.exp(-y / lam)
    ref = -lam * np.log(np.maximum(z, np.exp(-H / lam)))
    np.testing.assert_allclose(_x64(D.kl_dual, M, y, mask, lam, H), ref, rtol=1e-9, atol=1e-12)
    if lam == 0.005 and seed % 2 == 0:
        assert (z <= 0).any()  # the floor is exercised

def test_population_duals_on_the_linear_mdp():
    """With the true factors, TV truncates at min V + lambda; KL and chi2 cannot move the
    mass of mu_{1,4} = delta_{x5} outside its support, so they give no robustness there."""
    mu = np.asarray(linear_mdp.factors(None))[0]  # [d, S]
    v = np.array([0.0, 1.3, 0.7, 0.0, 2.0])  # V_2 over x1..x5 (x4 = fail = 0)
    lam = 0.1
    tv = _x64(D.tv_dual, mu, v, np.ones(5), lam)
    kl = _x64(D.kl_dual, mu, v, np.ones(5), lam, H)
    chi2 = _x64(D.chi2_dual, mu, v, np.ones(5), lam, H)
    np.testing.assert_allclose(tv, mu @ np.minimum(v, lam), atol=1e-12)
    np.testing.assert_allclose(kl[3], 2.0, atol=1e-12)
    np.testing.assert_allclose(chi2[3], 2.0, atol=1e-12)
    assert tv[3] == pytest.approx(lam)


# --- ridge regression, bonus and the whole backward induction against NumPy ---------------------
def _numpy_official(data, method, beta, gamma, lam, rho, delta=0.3, xi_norm=0.2):
    """A loop-by-loop NumPy port of the official ``Simulated_Linear_MDP/algorithm.py`` update_Q."""
    states, actions, rewards = (np.asarray(data[k]) for k in ("states", "actions", "rewards"))
    table = np.asarray(linear_mdp.features(delta, xi_norm))
    theta = linear_mdp.reward_parameters()
    k, hor = actions.shape
    w, lam_mats = [None] * hor, [gamma * np.eye(4) for _ in range(hor)]

    def q_func(phi, h, s_f):
        if s_f:
            return 0.0
        li = np.linalg.inv(lam_mats[h])
        if method == "pevi":
            pen = beta * np.sqrt(phi @ li @ phi)
        else:
            pen = beta * np.sqrt(phi @ np.diag(np.diagonal(li)) @ phi)
        return min(w[h] @ phi - pen, hor - h)

    for h in range(hor - 1, -1, -1):
        for n in range(k):
            f = table[states[n, h], actions[n, h]]
            lam_mats[h] += np.outer(f, f)
        li = np.linalg.inv(lam_mats[h])
        phis = np.stack([table[states[n, h], actions[n, h]] for n in range(k)])
        if h == hor - 1:
            v_next = np.zeros(k)
        else:
            v_next = np.array([max(q_func(table[states[n, h + 1], a], h + 1, states[n, h + 1] == linear_mdp.FAIL)
                                   for a in range(16)) for n in range(k)])
        if method == "pevi":
            w[h] = sum(li @ (phis[n] * (rewards[n, h] + v_next[n])) for n in range(k))
        elif h == hor - 1:
            w[h] = theta[h]
        elif method == "r2pvi-tv":
            alpha = v_next.min() + lam
            w[h] = theta[h] + li @ phis.T @ np.minimum(v_next, alpha)
        elif method == "r2pvi-kl":
            z = li @ phis.T @ np.exp(-v_next / lam)
            w[h] = theta[h] - lam * np.log(np.maximum(z, np.exp(-hor / lam)))
        elif method == "drpvi":
            nu = []
            for i in range(4):  # exact max over alpha (the official code uses Nelder-Mead)
                grid = np.concatenate([np.linspace(0, hor, 3001), np.clip(v_next, 0, hor)])
                nu.append(max((li @ phis.T @ np.minimum(v_next, a))[i] - rho[h][i] * a for a in grid))
            w[h] = theta[h] + np.array(nu)
    return np.stack(w), np.stack([np.linalg.inv(m) for m in lam_mats])


def _fit_trajectories(data, config, delta=0.3, xi_norm=0.2):
    model = M.learner_model(M.ModelSpec("linear-mdp", (("delta", delta), ("xi_norm", xi_norm))))
    with jax.enable_x64(True):
        sd = trajectory_step_data(model, data)
        coefs = R.coefficients_of(config, 3, 4, jnp.float64)
        w, li = R.backward_induction(sd, jnp.asarray(model.theta), coefs, method=R.method_of(config),
                                     bonus=config.bonus)
    return np.asarray(w), np.asarray(li)


def trajectory_step_data(model, data):
    states, actions, rewards = data["states"], data["actions"], data["rewards"]
    k = actions.shape[0]
    steps = jnp.broadcast_to(jnp.arange(4), states.shape)
    obs = linear_mdp.observation(states, steps).astype(jnp.float64)
    ones = jnp.ones((3, k))
    return M.step_data(model, obs[:, :3].swapaxes(0, 1), actions.T, rewards.T.astype(jnp.float64),
                       obs[:, 1:].swapaxes(0, 1), ones, ones)


@pytest.fixture(scope="module")
def lmdp_trajectories():
    return jax.tree_util.tree_map(np.asarray, linear_mdp.collect(jax.random.PRNGKey(1), 60, 0.3, 0.2))


@pytest.mark.parametrize("config", [
    R.PEVIConfig(beta=1.0, gamma=0.1),
    R.R2PVIConfig(lam=0.1, beta=1.0, gamma=0.1),
    R.R2PVIKLConfig(lam=0.1, beta=1.0, gamma=0.1),
    R.DRPVIConfig(rho=0.3, beta=1.0, gamma=0.1, rho_coordinates=(3,), rho_steps=(0,)),
], ids=["pevi", "tv", "kl", "drpvi"])
def test_backward_induction_matches_numpy_port_of_official_code(config, lmdp_trajectories):
    w, li = _fit_trajectories(jax.tree_util.tree_map(jnp.asarray, lmdp_trajectories), config)
    rho = np.zeros((3, 4))
    if isinstance(config, R.DRPVIConfig):
        rho[0, 3] = config.rho
    ref_w, ref_li = _numpy_official(lmdp_trajectories, R.method_of(config), config.beta, config.gamma,
                                    getattr(config, "lam", 0.0), rho)
    np.testing.assert_allclose(li, ref_li, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w, ref_w, rtol=1e-8, atol=1e-9)


def test_bonus_forms_match_numpy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    li = np.linalg.inv(a @ a.T + np.eye(4))
    phi = rng.dirichlet(np.ones(4), size=7)
    beta = 0.7
    code = _x64(M.bonus_fn, phi, li, beta, "code")
    paper = _x64(M.bonus_fn, phi, li, beta, "paper")
    ell = _x64(M.bonus_fn, phi, li, beta, "elliptical")
    np.testing.assert_allclose(code, beta * np.sqrt([f @ np.diag(np.diag(li)) @ f for f in phi]), rtol=1e-12)
    np.testing.assert_allclose(paper, beta * np.array([np.sum(f * np.sqrt(np.diag(li))) for f in phi]), rtol=1e-12)
    np.testing.assert_allclose(ell, beta * np.sqrt([f @ li @ f for f in phi]), rtol=1e-12)
    assert np.all(code <= paper + 1e-12)  # the l2 norm of the widths never exceeds their l1 norm


# --- environments --------------------------------------------------------------------------------
@pytest.mark.parametrize("q", [None, 0.0, 0.4, 1.0])
def test_linear_mdp_kernel_is_valid_and_perturbed_as_specified(q):
    phi = linear_mdp.features(0.3, 0.2)
    assert np.all(phi >= 0) and np.allclose(phi.sum(-1), 1.0)
    P = linear_mdp.transition_kernel(0.3, 0.2, q)
    assert np.all(P >= 0) and np.allclose(P.sum(-1), 1.0)
    nominal = linear_mdp.transition_kernel(0.3, 0.2, None)
    np.testing.assert_allclose(P[1:], nominal[1:])  # steps 2, 3 are nominal
    x1 = P[0, linear_mdp.START]  # [A, S]
    if q is None:
        np.testing.assert_allclose(x1[:, 1], 0.999 * phi[0, :, 0])
        np.testing.assert_allclose(x1[:, linear_mdp.FAIL], 0.001 * phi[0, :, 0])
        np.testing.assert_allclose(x1[:, linear_mdp.GOAL], phi[0, :, 3])
    else:
        np.testing.assert_allclose(x1[:, 1], phi[0, :, 0])
        np.testing.assert_allclose(x1[:, linear_mdp.FAIL], q * phi[0, :, 3])
        np.testing.assert_allclose(x1[:, linear_mdp.GOAL], (1 - q) * phi[0, :, 3])
    # x4 and x5 absorb at steps 2 and 3
    assert np.all(P[1:, linear_mdp.FAIL, :, linear_mdp.FAIL] == 1.0)
    assert np.all(P[1:, linear_mdp.GOAL, :, linear_mdp.GOAL] == 1.0)
    r = linear_mdp.rewards(0.3, 0.2)
    assert np.all(r[0] == 0) and np.all(r[1:, linear_mdp.GOAL] == 1) and np.all(r[1:, linear_mdp.FAIL] == 0)


def test_linear_mdp_gym_env_and_exact_value_agree():
    env = linear_mdp.LinearMDPEnv(q=0.6)
    policy = np.zeros((3, 5), np.int64)
    policy[0, 0] = 15  # all +1 at x1
    returns = []
    for i in range(3000):
        obs, _ = env.reset(seed=i)
        total, done = 0.0, False
        while not done:
            state, step = int(obs[:5].argmax()), int(obs[5])
            obs, r, term, trunc, _ = env.step(policy[step, state])
            total += r
            done = term or trunc
        returns.append(total)
    exact = float(linear_mdp.policy_value(jnp.asarray(policy), 0.3, 0.2, 0.6))
    assert abs(np.mean(returns) - exact) < 4 * np.std(returns) / np.sqrt(len(returns))
    # by hand: from x1, phi = (0.5, 0, 0, 0.5): x2 w.p. 0.5, x5 w.p. 0.5 (1 - q) and then 1 + 1
    phi1 = np.asarray(linear_mdp.features(0.3, 0.2))[0, 15]
    phi2 = np.asarray(linear_mdp.features(0.3, 0.2))[1, 0]
    phi3 = np.asarray(linear_mdp.features(0.3, 0.2))[2, 0]
    v_x2 = phi2[3] + phi2[3] * 1.0 + 0.999 * phi2[1] * phi3[3]  # r_2 + E r_3: x5 pays 1, x3 pays phi_4
    expect = phi1[0] * v_x2 + phi1[3] * 0.4 * 2.0
    assert exact == pytest.approx(expect, rel=1e-6)


def test_american_put_env_lattice_and_perturbation():
    assert american_put.initial_price(1) == pytest.approx(99.1702, abs=1e-3)
    assert american_put.initial_price(0) == pytest.approx(100.4881, abs=1e-3)
    phi = np.asarray(american_put.hat_features(jnp.linspace(60, 180, 241), 30))
    assert np.all(phi >= 0) and np.all(phi.sum(-1) <= 1 + 1e-5)
    inside = np.asarray(american_put.hat_features(jnp.array([85.0, 99.17, 150.0]), 30))
    np.testing.assert_allclose(inside.sum(-1), 1.0, atol=1e-5)
    # price-up frequency follows p
    for p in (0.2, 0.8):
        env = american_put.AmericanPutEnv(p=p)
        env.reset(seed=0)
        ups = 0
        for _ in range(2000):
            before = env._price
            env._step = 0
            env.step(0)
            ups += env._price > before
        assert abs(ups / 2000 - p) < 0.04
    # exact lattice value of "exercise when the price is below 98" against Monte-Carlo
    s1, p = american_put.initial_price(1), 0.4
    prices = np.asarray(american_put.lattice_prices(s1))
    exercise = prices < 98.0
    exact = float(american_put.policy_value(jnp.asarray(exercise), s1, p))
    env = american_put.AmericanPutEnv(p=p)
    returns = []
    for i in range(3000):
        obs, _ = env.reset(seed=i)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(int(obs[0] < 98.0))
            total += r
            done = term or trunc
        returns.append(total)
    assert abs(np.mean(returns) - exact) < 4 * np.std(returns) / np.sqrt(len(returns)) + 1e-9


def test_generated_files_are_deterministic_and_d4rl_shaped(tmp_path):
    r2pvi_data.build_linear_mdp(tmp_path / "a.hdf5")
    r2pvi_data.build_linear_mdp(tmp_path / "b.hdf5")
    import h5py

    with h5py.File(tmp_path / "a.hdf5") as fa, h5py.File(tmp_path / "b.hdf5") as fb:
        for key in ("observations", "actions", "rewards", "terminals", "timeouts"):
            np.testing.assert_array_equal(fa[key][()], fb[key][()])
        obs, timeouts = fa["observations"][()], fa["timeouts"][()]
        assert obs.shape == (400, 6) and timeouts.sum() == 100
        # a row's next row is one step later unless the row is a timeout row
        steps = obs[:, -1]
        assert np.all(steps[1:][~timeouts[:-1]] == steps[:-1][~timeouts[:-1]] + 1)
        assert float(fa["metadata/delta"][()]) == 0.3


def test_load_dataset_round_trip(tmp_path, monkeypatch):
    loader = pytest.importorskip("offreg.data.loader")
    monkeypatch.setenv("OFFREG_DATA_DIR", str(tmp_path))
    ds = loader.load_dataset("offreg/linear-mdp-v0")
    assert ds.info.env_id == "linear-mdp" and len(ds) == 300 and ds.info.num_episodes == 100
    t = ds.transitions
    np.testing.assert_array_equal(np.asarray(t.next_observations)[:, -1], np.asarray(t.observations)[:, -1] + 1)
    ref = _lmdp_dataset()
    np.testing.assert_array_equal(np.asarray(t.observations), np.asarray(ref.transitions.observations))
    np.testing.assert_array_equal(np.asarray(t.actions), np.asarray(ref.transitions.actions))


# --- the agent -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tv_agent(lmdp_dataset):
    return R.LinearValueIterationAgent.create(R.R2PVIConfig(), lmdp_dataset, jax.random.PRNGKey(0))


def _all_observations():
    s, h = np.meshgrid(np.arange(5), np.arange(3), indexing="ij")
    return np.asarray(linear_mdp.observation(s.reshape(-1), h.reshape(-1)))


def test_learned_q_within_truncation_bounds(lmdp_dataset, tv_agent):
    obs = _all_observations()
    q = np.asarray(tv_agent.q_values(obs))
    cap = 3 - obs[:, -1]
    assert np.all(q <= cap[:, None] + 1e-6)
    big = np.asarray(tv_agent.replace(w=tv_agent.w + 10.0).q_values(obs))
    live = obs[:, linear_mdp.FAIL] == 0
    np.testing.assert_allclose(big[live], np.broadcast_to(cap[live, None], big[live].shape))  # the cap binds
    fail = obs[:, linear_mdp.FAIL] == 1
    assert np.all(q[fail] == 0.0)
    # the optional floor at 0 (the paper's ^+): a large beta makes estimates negative without it
    raw, floored = (R.LinearValueIterationAgent.create(R.R2PVIConfig(beta=5.0, clip_at_zero=c), lmdp_dataset,
                                                       jax.random.PRNGKey(0)).q_values(obs) for c in (False, True))
    raw, floored = np.asarray(raw), np.asarray(floored)
    assert raw.min() < 0 and floored.min() >= 0
    last = obs[:, -1] == 2  # the last step has no upstream effect of the floor
    np.testing.assert_allclose(floored[last], np.maximum(raw[last], 0.0))


def test_agent_acts_as_the_fitted_functions(lmdp_dataset, tv_agent):
    obs = _all_observations()
    q = np.asarray(tv_agent.q_values(obs))
    np.testing.assert_array_equal(np.asarray(tv_agent.act(obs)), q.argmax(-1))
    assert int(tv_agent.act(obs[0])) == int(q[0].argmax())
    # Q from the stored weights, by hand (bonus in the official code's form)
    st, step = (np.asarray(x) for x in linear_mdp.decode_observation(obs))
    table = np.asarray(linear_mdp.features(0.3, 0.2))
    w, li = np.asarray(tv_agent.w), np.asarray(tv_agent.lambda_inv)
    for j in range(len(obs)):
        phi = table[st[j]]
        hand = np.minimum(phi @ w[step[j]] - np.sqrt(phi**2 @ np.diag(li[step[j]])), 3 - step[j])
        if st[j] != linear_mdp.FAIL:
            np.testing.assert_allclose(q[j], hand, atol=1e-5)


def test_save_load_gives_identical_actions(lmdp_dataset, tv_agent):
    blob = flax.serialization.to_bytes(tv_agent)
    obs = _all_observations()
    # into an agent fitted differently, and into the data-free template (what a checkpoint loader needs)
    other = R.LinearValueIterationAgent.create(R.R2PVIConfig(lam=5.0), lmdp_dataset, jax.random.PRNGKey(1))
    template = R.LinearValueIterationAgent.template(tv_agent.config, lmdp_dataset.info)
    assert jax.tree_util.tree_structure(template) == jax.tree_util.tree_structure(tv_agent)
    for target in (other.replace(config=tv_agent.config), template):
        restored = flax.serialization.from_bytes(target, blob)
        np.testing.assert_array_equal(np.asarray(restored.act(obs)), np.asarray(tv_agent.act(obs)))
        np.testing.assert_array_equal(np.asarray(restored.w), np.asarray(tv_agent.w))
        np.testing.assert_array_equal(np.asarray(restored.lambda_inv), np.asarray(tv_agent.lambda_inv))


def test_configs_round_trip_and_reject_bad_values():
    for cfg in (R.R2PVIConfig(lam=0.3), R.R2PVIKLConfig(), R.R2PVIChi2Config(bonus="paper"), R.PEVIConfig(),
                R.DRPVIConfig(rho_coordinates=(3,), rho_steps=(0,)), R.DRVILConfig(rho=0.2)):
        assert type(cfg).from_dict(cfg.to_dict()) == cfg
        assert type(cfg).from_dict(__import__("json").loads(cfg.to_json())) == cfg
    assert R.R2PVIKLConfig().divergence == "kl" and R.PEVIConfig().bonus == "elliptical"
    with pytest.raises(ConfigError, match="lam"):
        R.R2PVIKLConfig(lam=0.0)
    with pytest.raises(ConfigError, match="gamma"):
        R.R2PVIConfig(gamma=0.0)
    with pytest.raises(ConfigError, match="normalize_observations"):
        R.R2PVIConfig(normalize_observations=True)
    with pytest.raises(ConfigError):
        R.R2PVIConfig(bonus="l3")


def test_agents_are_registered():
    from offreg.agents import registry

    reg = registry()
    for name in ("r2pvi-tv", "r2pvi-kl", "r2pvi-chi2", "pevi", "drpvi", "drvi-l"):
        assert reg[name].agent_cls is R.LinearValueIterationAgent
        assert reg[name].agent_cls.gradient_free and reg[name].agent_cls.requires_env == M.SUPPORTED_ENVS
    assert reg["r2pvi-chi2"].config_cls().divergence == "chi2"


def test_other_datasets_raise_a_clear_error():
    info = DatasetInfo("toy", "file", None, 3, 2, 0)
    rng = np.random.default_rng(0)
    ds = from_arrays(rng.normal(size=(10, 3)), rng.normal(size=(10, 2)), np.zeros(10), rng.normal(size=(10, 3)),
                     np.zeros(10), info)
    with pytest.raises(EnvironmentError_, match="linear-mdp"):
        R.LinearValueIterationAgent.create(R.R2PVIConfig(), ds, jax.random.PRNGKey(0))


def test_malformed_linear_mdp_data_raises(lmdp_dataset):
    t = lmdp_dataset.transitions
    bad = dataclasses.replace(lmdp_dataset, transitions=t.replace(actions=t.actions + 0.5))
    with pytest.raises(DatasetError, match="integer indices"):
        R.LinearValueIterationAgent.create(R.R2PVIConfig(), bad, jax.random.PRNGKey(0))
    bad = dataclasses.replace(lmdp_dataset, transitions=t.replace(next_observations=t.observations))
    with pytest.raises(DatasetError, match="one step later"):
        R.LinearValueIterationAgent.create(R.R2PVIConfig(), bad, jax.random.PRNGKey(0))


def test_agent_matches_trajectory_fit(lmdp_dataset):
    """The flat-dataset path (group by step) and the trajectory path give the same weights."""
    data = linear_mdp.collect(jax.random.PRNGKey(0), 100, 0.3, 0.2)
    w, _ = _fit_trajectories(data, R.R2PVIKLConfig())
    agent = R.LinearValueIterationAgent.create(R.R2PVIKLConfig(), lmdp_dataset, jax.random.PRNGKey(0))
    np.testing.assert_allclose(np.asarray(agent.w), w, rtol=1e-5, atol=1e-5)


# --- learning ------------------------------------------------------------------------------------
def test_r2pvi_tv_degrades_less_than_pevi_under_perturbation():
    """Fig. 1(a) in miniature: 8 datasets of 100 trajectories, exact returns at q = 0 and q = 0.9."""
    model = M.learner_model(LMDP)
    obs = jnp.asarray(_all_observations())

    def returns(key, config):
        data = linear_mdp.collect(key, 100, 0.3, 0.2)
        sd = trajectory_step_data(model, data)
        coefs = R.coefficients_of(config, 3, 4, jnp.float64)
        w, li = R.backward_induction(sd, jnp.asarray(model.theta), coefs, method=R.method_of(config),
                                     bonus=config.bonus)
        pol = M.greedy_actions(model, w, li, coefs.beta, obs, config.bonus, False).reshape(5, 3).T
        return jnp.stack([linear_mdp.policy_value(pol, 0.3, 0.2, q) for q in (0.0, 0.9)])

    keys = jax.random.split(jax.random.PRNGKey(42), 8)
    with jax.enable_x64(True):
        tv = np.asarray(jax.vmap(lambda k: returns(k, R.R2PVIConfig()))(keys)).mean(0)
        pevi = np.asarray(jax.vmap(lambda k: returns(k, R.PEVIConfig()))(keys)).mean(0)
    drop_tv, drop_pevi = tv[0] - tv[1], pevi[0] - pevi[1]
    assert drop_tv < drop_pevi - 0.2, (tv, pevi)
    assert tv[1] > pevi[1]  # more robust under the large shift
    assert pevi[0] > tv[0]  # and PEVI is better on the nominal environment


def test_evaluate_runs_the_agent_in_its_environment(tv_agent, lmdp_dataset):
    evaluation = pytest.importorskip("offreg.evaluation")
    res = evaluation.evaluate(tv_agent, lmdp_dataset, episodes=200, seed=0)
    obs = _all_observations()
    pol = np.asarray(tv_agent.act(obs)).reshape(5, 3).T
    exact = float(linear_mdp.policy_value(jnp.asarray(pol), 0.3, 0.2, None))
    assert abs(res.mean_return - exact) < 4 * res.std_return / np.sqrt(200) + 1e-6
