"""Provenance: one module, each spelling pinned against the libraries' own version strings."""

import gymnasium as gym
import jax
import mujoco
import numpy as np

from offreg.data.generate.collect import level_metadata
from offreg.provenance import (
    NOT_INSTALLED,
    dataset_versions,
    hardware,
    package_versions,
    simulator_versions,
    versions,
)


def test_versions_name_the_libraries_that_decide_the_numbers():
    v = versions()
    assert v["jax"] == jax.__version__ and v["mujoco"] == mujoco.__version__ and v["gymnasium"] == gym.__version__
    assert v["backend"] == jax.default_backend() and {"python", "platform", "devices"} <= set(v)
    assert versions(("jax",)).keys() == {"python", "platform", "jax", "backend", "devices"}


def test_a_missing_package_is_said_so_and_left_out_of_versions():
    assert package_versions(("no-such-distribution-offreg",)) == {"no-such-distribution-offreg": NOT_INSTALLED}
    assert "no-such-distribution-offreg" not in versions(("no-such-distribution-offreg",))


def test_simulator_versions():
    assert simulator_versions() == {"gymnasium": gym.__version__, "mujoco": mujoco.__version__}


def test_generated_files_keep_their_metadata_spelling():
    # the keys (and their order) every offreg-generated D4RL file has carried since offreg 0.1
    v = dataset_versions()
    assert list(v) == ["mujoco_version", "gymnasium_version", "offreg_version"]
    assert v["mujoco_version"] == mujoco.__version__ and v["gymnasium_version"] == gym.__version__
    data = {"rewards": np.ones(3, np.float32), "terminals": np.array([0, 0, 1], bool), "timeouts": np.zeros(3, bool)}
    meta = level_metadata("hopper", "Hopper-v4", "random", data, "cmd", 0)
    assert {k: meta[k] for k in v} == v


def test_hardware_describes_this_machine():
    h = hardware()
    assert h["cpu_count"] >= 1 and h["memory_gib"] > 0 and h["jax_backend"] == jax.default_backend()
