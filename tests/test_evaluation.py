"""Evaluation and the D4RL locomotion environment mapping.

Golden values come from plain Gymnasium loops (``gym.make`` + ``step``, one environment at a time),
the constants of D4RL's ``d4rl/infos.py`` and the model files and reward definitions of gym's
``-v2`` MuJoCo classes, never from the code under test. Rollouts are compared exactly using
:class:`DiagonalPolicy`, whose actions do not depend on the batch size (a jitted matmul over a batch
of B observations may round differently from a batch of 1).
"""

from __future__ import annotations

import flax.struct
import gymnasium as gym
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from offreg.data.core import DatasetInfo, from_arrays
from offreg.envs import make_env, register_env
from offreg.envs.mujoco import LOCOMOTION
from offreg.errors import ConfigError, EnvironmentError_, TrainingError, UnknownNameError
from offreg.evaluation import EvalResult, evaluate, evaluate_seeds
from offreg.provenance import simulator_versions

# d4rl/infos.py: every dataset of an environment shares one (REF_MIN_SCORE, REF_MAX_SCORE) pair.
D4RL_REF = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}


class LinearPolicy(flax.struct.PyTreeNode):
    """``a = tanh(obs @ w + b)``, a stand-in for an agent (acts on raw observations)."""

    w: jax.Array
    b: jax.Array

    def act(self, observations: jax.Array) -> jax.Array:
        return jnp.tanh(observations @ self.w + self.b)


class DiagonalPolicy(flax.struct.PyTreeNode):
    """``a = tanh(obs[:k] * w0 + obs[k:2k] * w1 + b)`` with ``k = act_dim``.

    Elementwise only (no reduction), so its actions are bit-identical for any batch size and the
    vectorized rollouts can be compared exactly with one-environment loops.
    """

    w: jax.Array  # [2, act_dim]
    b: jax.Array  # [act_dim]

    def act(self, observations: jax.Array) -> jax.Array:
        k = self.b.shape[-1]
        return jnp.tanh(observations[..., :k] * self.w[..., 0, :] + observations[..., k : 2 * k] * self.w[..., 1, :]
                        + self.b)


def linear_policy(seed: int, obs_dim: int, act_dim: int, scale: float = 0.5) -> LinearPolicy:
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    return LinearPolicy(scale * jax.random.normal(k1, (obs_dim, act_dim)), 0.1 * jax.random.normal(k2, (act_dim,)))


def diagonal_policy(seed: int, act_dim: int, scale: float = 1.0) -> DiagonalPolicy:
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    return DiagonalPolicy(scale * jax.random.normal(k1, (2, act_dim)), 0.1 * jax.random.normal(k2, (act_dim,)))


def plain_loop(gym_id, act, seeds, horizon, pad=0, clip=True, **make_kwargs):
    """Independent reference: one ``gym.make`` environment per episode, one act call per step."""
    returns, lengths = [], []
    for s in seeds:
        env = gym.make(gym_id, **make_kwargs)
        obs, _ = env.reset(seed=s)
        total, steps = 0.0, 0
        for _ in range(horizon):
            if pad:
                obs = np.concatenate([obs, np.zeros(pad)])
            action = act(obs)
            if clip:
                action = np.clip(action, env.action_space.low, env.action_space.high)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += reward
            steps += 1
            if terminated or truncated:
                break
        returns.append(total)
        lengths.append(steps)
        env.close()
    return np.array(returns), np.array(lengths)


def jax_single(policy):
    fn = jax.jit(lambda o: policy.act(o))
    return lambda obs: np.asarray(fn(jnp.asarray(obs[None], jnp.float32)))[0]


def hopper_info(**overrides) -> DatasetInfo:
    kw = dict(
        name="hopper-medium-v2", source="d4rl", env_id="hopper", obs_dim=11, act_dim=3, num_transitions=1,
        ref_min_score=-20.272305, ref_max_score=3234.3, max_episode_steps=1000,
    )
    return DatasetInfo(**{**kw, **overrides})


# --- (a) vectorized rollouts equal a plain Gymnasium loop ---------------------------------------------
@pytest.mark.parametrize(
    "name, gym_id, obs_dim, act_dim, horizon",
    [("hopper", "Hopper-v4", 11, 3, 60), ("halfcheetah", "HalfCheetah-v4", 17, 6, 25),
     ("walker2d", "Walker2d-v4", 17, 6, 40)],
)
def test_returns_equal_plain_gymnasium_loop(name, gym_id, obs_dim, act_dim, horizon):
    policy = diagonal_policy(1, act_dim)
    result = evaluate(policy, name, episodes=4, seed=7, max_episode_steps=horizon)
    ref_returns, ref_lengths = plain_loop(gym_id, jax_single(policy), [7, 8, 9, 10], horizon)
    np.testing.assert_array_equal(result.lengths, ref_lengths)
    np.testing.assert_array_equal(result.returns, ref_returns)
    assert result.returns.shape == (4,) and result.returns.dtype == np.float64
    assert len(set(result.returns.tolist())) == 4  # the seeds give different start states
    if name == "hopper":  # some episodes end before the limit: finished ones stopped accumulating
        assert ref_lengths.min() < horizon


def test_ant_returns_equal_plain_loop_with_padding():
    policy = diagonal_policy(2, 8)
    result = evaluate(policy, "ant", episodes=2, seed=0, max_episode_steps=20)
    ref, lengths = plain_loop("Ant-v4", jax_single(policy), [0, 1], 20, pad=84, use_contact_forces=False)
    np.testing.assert_array_equal(result.lengths, lengths)
    np.testing.assert_array_equal(result.returns, ref)


def test_actions_are_clipped_to_the_box_like_d4rl():
    class Loud(flax.struct.PyTreeNode):
        w: jax.Array

        def act(self, observations):
            return 3.0 * jnp.tanh(observations[..., :6] * self.w + jnp.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0]))

    policy = Loud(jax.random.normal(jax.random.PRNGKey(0), (6,)))  # actions mostly outside [-1, 1]
    result = evaluate(policy, "halfcheetah", episodes=2, seed=0, max_episode_steps=15)
    ref, _ = plain_loop("HalfCheetah-v4", jax_single(policy), [0, 1], 15, clip=True)
    unclipped, _ = plain_loop("HalfCheetah-v4", jax_single(policy), [0, 1], 15, clip=False)
    np.testing.assert_array_equal(result.returns, ref)
    assert np.all(np.abs(result.returns - unclipped) > 1e-3)  # the control cost saw the clipped action


# --- (b) normalized scores ---------------------------------------------------------------------------
def test_normalized_score_uses_d4rl_constants():
    policy = linear_policy(3, 11, 3)
    lo, hi = D4RL_REF["hopper"]
    for target in (hopper_info(), "hopper"):
        result = evaluate(policy, target, episodes=3, seed=0, max_episode_steps=30)
        expected = 100.0 * (result.returns - lo) / (hi - lo)
        np.testing.assert_allclose(result.normalized, expected, rtol=1e-12)
        np.testing.assert_allclose(result.mean_score, 100.0 * (np.mean(result.returns) - lo) / (hi - lo), rtol=1e-12)
        np.testing.assert_allclose(result.mean_return, np.mean(result.returns), rtol=1e-12)
        np.testing.assert_allclose(result.std_return, np.std(result.returns), rtol=1e-12)
    for name, (lo, hi) in D4RL_REF.items():
        assert (LOCOMOTION[name].ref_min_score, LOCOMOTION[name].ref_max_score) == (lo, hi)


def test_no_reference_scores_gives_no_normalized_score():
    result = evaluate(linear_policy(3, 11, 3), hopper_info(ref_min_score=None, ref_max_score=None), 2, 0, 10)
    assert result.normalized is None and result.mean_score is None
    assert np.isfinite(result.mean_return)


def test_dataset_argument_and_result_record():
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(5, 11))
    data = from_arrays(obs, rng.uniform(-1, 1, (5, 3)), np.ones(5), obs, np.zeros(5), hopper_info(max_episode_steps=12))
    policy = linear_policy(4, 11, 3)
    result = evaluate(policy, data, episodes=2, seed=3)
    assert isinstance(result, EvalResult)
    assert result.lengths.max() <= 12  # the dataset's time limit
    np.testing.assert_array_equal(result.returns, evaluate(policy, data.info, 2, 3).returns)
    record = result.to_dict()
    assert record["returns"] == result.returns.tolist() and record["seed"] == 3
    assert record["versions"] == {
        "gymnasium": gym.__version__, "mujoco": mujoco.__version__, "environment": "Hopper-v4",
    }
    assert simulator_versions() == {"gymnasium": gym.__version__, "mujoco": mujoco.__version__}


# --- (c), (d): the environments reproduce the D4RL v2 observation layouts and models -------------------
def test_ant_observation_is_v4_plus_84_zeros():
    env, ref = make_env("ant"), gym.make("Ant-v4")
    assert env.observation_space.shape == (111,) and env.action_space.shape == (8,)
    obs, _ = env.reset(seed=3)
    ref_obs, _ = ref.reset(seed=3)
    assert obs.shape == (111,) and ref_obs.shape == (27,)
    np.testing.assert_array_equal(obs[:27], ref_obs)
    np.testing.assert_array_equal(obs[27:], np.zeros(84))
    action = np.linspace(-1, 1, 8)
    for _ in range(3):
        obs, reward, *_ = env.step(action)
        ref_obs, ref_reward, *_ = ref.step(action)
    np.testing.assert_array_equal(obs[:27], ref_obs)
    np.testing.assert_array_equal(obs[27:], np.zeros(84))
    assert reward == ref_reward  # no contact cost (use_contact_forces=False)


def test_walker2d_uses_the_v4_model_foot_friction():
    model = make_env("walker2d").unwrapped.model

    def friction(geom):
        return model.geom_friction[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, geom)][0]

    assert friction("foot_left_geom") == pytest.approx(1.9)
    assert friction("foot_geom") == pytest.approx(0.9)  # the right foot
    v5 = gym.make("Walker2d-v5").unwrapped.model  # why offreg does not use v5's default model
    assert v5.geom_friction[mujoco.mj_name2id(v5, mujoco.mjtObj.mjOBJ_GEOM, "foot_geom")][0] == pytest.approx(1.9)


def test_halfcheetah_v5_equals_v4_and_keeps_its_mass():
    env, ref = make_env("halfcheetah"), gym.make("HalfCheetah-v4")
    assert env.spec.id == "HalfCheetah-v5"
    assert np.sum(env.unwrapped.model.body_mass) == pytest.approx(14.0)  # settotalmass="14" still applied
    np.testing.assert_array_equal(env.reset(seed=11)[0], ref.reset(seed=11)[0])
    rng = np.random.default_rng(0)
    for _ in range(20):
        action = rng.uniform(-1, 1, 6)
        a, b = env.step(action), ref.step(action)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1] == b[1]


def test_hopper_keeps_the_alive_bonus_on_the_terminal_step():
    env = make_env("hopper")
    env.reset(seed=0)
    action = np.full(3, 0.5)
    for _ in range(200):
        _, reward, terminated, _, info = env.step(action)
        if terminated:
            break
    assert terminated
    # gym v2 / Gymnasium v4: forward + 1 - 1e-3 |a|^2 on every step, the terminal one included.
    assert reward == pytest.approx(info["x_velocity"] + 1.0 - 1e-3 * np.sum(action**2), rel=1e-12)
    # Hopper-v5 (not used) drops that bonus: the same episode returns exactly 1 less.
    v4, _ = plain_loop("Hopper-v4", lambda o: action, [0], 200)
    v5, _ = plain_loop("Hopper-v5", lambda o: action, [0], 200)
    assert v4[0] - v5[0] == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("name, obs_dim, act_dim", [("hopper", 11, 3), ("halfcheetah", 17, 6),
                                                    ("walker2d", 17, 6), ("ant", 111, 8)])
def test_locomotion_spaces_and_time_limit(name, obs_dim, act_dim):
    env = make_env(name)
    assert env.observation_space.shape == (obs_dim,)
    assert env.action_space.shape == (act_dim,)
    np.testing.assert_array_equal(env.action_space.low, -1.0)
    np.testing.assert_array_equal(env.action_space.high, 1.0)
    assert env.spec.max_episode_steps == 1000


def test_make_env_leaves_warning_state_alone():
    import warnings

    before = list(warnings.filters)
    previous = mujoco.get_mju_user_warning()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_env("hopper")
        make_env("halfcheetah")
    assert not [w for w in caught if "out of date" in str(w.message)]
    assert list(warnings.filters) == before
    assert mujoco.get_mju_user_warning() is previous


# --- (e) stacked agents ------------------------------------------------------------------------------
def test_evaluate_seeds_takes_an_engine_agent_with_a_shared_step():
    """A multi-seed agent of the engine (``offreg.seeds``: the step is shared, not stacked) evaluates
    like its seeds one by one; before, its unbatched step was taken for a mismatched seed axis."""
    import offreg
    from offreg.seeds import index_seed, stack_seeds

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(64, 11))
    data = from_arrays(obs, rng.uniform(-1, 1, (64, 3)), rng.normal(size=64), obs, np.zeros(64), hopper_info())
    small = dict(actor_hidden_dims="[8]", critic_hidden_dims="[8]", batch_size=16)
    stacked = stack_seeds([offreg.make_agent("td3bc", data, seed=s, **small) for s in (0, 1)])
    assert np.ndim(stacked.step) == 0
    results = evaluate_seeds(stacked, hopper_info(), episodes=2, seed=5, max_episode_steps=30)
    for i, result in enumerate(results):
        single = evaluate(index_seed(stacked, i), hopper_info(), episodes=2, seed=5, max_episode_steps=30)
        np.testing.assert_allclose(result.returns, single.returns, rtol=1e-6)


def test_evaluate_seeds_equals_separate_evaluations():
    policies = [diagonal_policy(10, 3), diagonal_policy(11, 3)]
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *policies)
    results = evaluate_seeds(stacked, hopper_info(), episodes=3, seed=5, max_episode_steps=40)
    assert len(results) == 2
    for policy, result in zip(policies, results, strict=True):
        single = evaluate(policy, hopper_info(), episodes=3, seed=5, max_episode_steps=40)
        np.testing.assert_array_equal(result.lengths, single.lengths)
        np.testing.assert_array_equal(result.returns, single.returns)
        np.testing.assert_array_equal(result.normalized, single.normalized)
    assert not np.allclose(results[0].returns, results[1].returns)
    # one base seed per agent
    results = evaluate_seeds(stacked, "hopper", episodes=2, seed=[3, 9], max_episode_steps=40)
    for policy, result, seed in zip(policies, results, [3, 9], strict=True):
        single = evaluate(policy, "hopper", episodes=2, seed=seed, max_episode_steps=40)
        np.testing.assert_array_equal(result.returns, single.returns)
        assert result.seed == seed


TRACES = []


class CountingPolicy(flax.struct.PyTreeNode):
    """Records each time ``act`` is traced (Python side effects run only while tracing under jit)."""

    w: jax.Array

    def act(self, observations):
        TRACES.append(observations.shape)
        return jnp.tanh(observations[..., :3] * self.w)


def test_repeated_evaluations_do_not_retrace():
    evaluate(CountingPolicy(jnp.ones(3)), "hopper", episodes=3, seed=0, max_episode_steps=5)
    first = len(TRACES)
    assert first >= 1
    evaluate(CountingPolicy(-jnp.ones(3)), "hopper", episodes=3, seed=4, max_episode_steps=5)
    assert len(TRACES) == first  # new weights, same structure and batch: the compiled act is reused


# --- generic agents and action spaces ----------------------------------------------------------------
class NumpyPolicy:
    """A non-JAX agent: plain NumPy (float64, elementwise), not a pytree."""

    def __init__(self, w, b):
        self.w, self.b = np.asarray(w, np.float64), np.asarray(b, np.float64)

    def act(self, observations):
        k = len(self.b)
        obs = np.asarray(observations, np.float64)
        return np.tanh(obs[:, :k] * self.w[0] + obs[:, k : 2 * k] * self.w[1] + self.b)


def test_non_jax_agent():
    jp = diagonal_policy(5, 3)
    policy = NumpyPolicy(jp.w, jp.b)
    result = evaluate(policy, "hopper", episodes=3, seed=0, max_episode_steps=30)
    ref, lengths = plain_loop("Hopper-v4", lambda o: policy.act(o[None].astype(np.float32))[0], [0, 1, 2], 30)
    np.testing.assert_array_equal(result.lengths, lengths)
    np.testing.assert_array_equal(result.returns, ref)


def test_pytree_agent_with_host_code_falls_back_to_eager_calls():
    class HostPolicy(flax.struct.PyTreeNode):
        w: jax.Array

        def act(self, observations):
            return np.tanh(np.asarray(observations)[:, :3] * np.asarray(self.w))  # not traceable

    policy = HostPolicy(diagonal_policy(6, 3).w[0])
    result = evaluate(policy, "hopper", episodes=2, seed=0, max_episode_steps=20)
    ref, _ = plain_loop("Hopper-v4", lambda o: policy.act(o[None].astype(np.float32))[0], [0, 1], 20)
    np.testing.assert_array_equal(result.returns, ref)


class ThresholdPolicy(flax.struct.PyTreeNode):
    """Discrete CartPole policy: push right when the pole leans right (``[B]`` int32 actions)."""

    w: jax.Array

    def act(self, observations):
        return (observations @ self.w > 0).astype(jnp.int32)


register_env("test-cartpole", lambda **kw: gym.make("CartPole-v1", **kw))


def test_discrete_action_space():
    policy = ThresholdPolicy(jnp.array([0.0, 0.1, 1.0, 0.5]))
    result = evaluate(policy, "test-cartpole", episodes=3, seed=0, max_episode_steps=200)
    single = jax_single(policy)
    ref, lengths = plain_loop("CartPole-v1", lambda o: int(single(o)), [0, 1, 2], 200, clip=False)
    np.testing.assert_array_equal(result.lengths, lengths)
    np.testing.assert_array_equal(result.returns, ref)
    assert result.normalized is None
    assert "mujoco" not in result.versions and result.versions["environment"] == "CartPole-v1"

    class Fractional:
        def act(self, observations):
            return np.full(len(observations), 0.5)

    with pytest.raises(EnvironmentError_, match="non-integer actions"):
        evaluate(Fractional(), "test-cartpole", episodes=2, max_episode_steps=5)


# --- (f) bad inputs -----------------------------------------------------------------------------------
def test_dataset_without_environment():
    info = DatasetInfo("antmaze-umaze-v2", "d4rl", None, 29, 8, 1, ref_min_score=0.0, ref_max_score=1.0)
    with pytest.raises(EnvironmentError_, match="antmaze-umaze-v2.*no evaluation environment"):
        evaluate(linear_policy(0, 29, 8), info)


def test_action_shape_mismatch():
    with pytest.raises(EnvironmentError_, match=r"shape \(2, 6\).*'hopper'.*\(2, 3\)"):
        evaluate(linear_policy(0, 11, 6), "hopper", episodes=2, max_episode_steps=5)


def test_agent_observation_dim_mismatch():
    with pytest.raises(EnvironmentError_, match=r"cannot take observations of shape \(2, 11\)"):
        evaluate(linear_policy(0, 17, 6), "hopper", episodes=2, max_episode_steps=5)
    with pytest.raises(EnvironmentError_, match=r"cannot take observations of shape \(2, 11\)"):
        evaluate(NumpyPolicy(np.zeros((2, 6)), np.zeros(6)), "hopper", episodes=2, max_episode_steps=5)


def test_dataset_environment_mismatch():
    with pytest.raises(EnvironmentError_, match="17-dim observations.*'hopper'"):
        evaluate(linear_policy(0, 17, 3), hopper_info(obs_dim=17), episodes=1, max_episode_steps=5)


def test_bad_arguments():
    policy = linear_policy(0, 11, 3)
    with pytest.raises(UnknownNameError, match="'hoper'.*'hopper'"):
        evaluate(policy, "hoper")
    with pytest.raises(ConfigError, match="episodes"):
        evaluate(policy, "hopper", episodes=0)
    with pytest.raises(ConfigError, match="max_episode_steps"):
        evaluate(policy, "hopper", max_episode_steps=0)
    with pytest.raises(ConfigError, match="seed"):
        evaluate(policy, "hopper", seed=-1)
    with pytest.raises(ConfigError, match="Dataset, a DatasetInfo or an environment name"):
        evaluate(policy, 3)
    with pytest.raises(ConfigError, match="leading seed axis"):
        evaluate_seeds(LinearPolicy(jnp.zeros((2, 11, 3)), jnp.zeros((3, 3))), "hopper", 1, 0, 5)
    with pytest.raises(ConfigError, match="one per agent"):
        evaluate_seeds(LinearPolicy(jnp.zeros((2, 11, 3)), jnp.zeros((2, 3))), "hopper", 1, [0, 1, 2], 5)
    with pytest.raises(ConfigError, match="jit-able|JAX pytree"):
        evaluate_seeds(NumpyPolicy(np.zeros((2, 3)), np.zeros(3)), "hopper", 1, 0, 5)


def test_non_finite_actions():
    policy = LinearPolicy(jnp.full((11, 3), jnp.nan), jnp.zeros(3))
    with pytest.raises(TrainingError, match="non-finite actions"):
        evaluate(policy, "hopper", episodes=2, max_episode_steps=5)
