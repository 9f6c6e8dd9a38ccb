"""Bad input: one test per case, each a one-line offreg error naming the input and the fix."""

import os

import h5py
import numpy as np
import pytest
from d4rl_files import write_d4rl_file

from offreg.data import load_dataset
from offreg.errors import DatasetError, OffregError, UnknownNameError


@pytest.fixture(autouse=True)
def _caches(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    monkeypatch.setenv("OFFREG_DATA_DIR", str(tmp_path / "offreg"))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("OFFREG_D4RL_BASE_URL", "http://127.0.0.1:9/")


def _rewrite(src, dst, **changes):
    """Copy the D4RL arrays of ``src`` to ``dst`` with some keys replaced (None deletes a key)."""
    with h5py.File(src, "r") as f:
        arrays = {k: f[k][()] for k in ("observations", "actions", "rewards", "terminals", "timeouts")}
    arrays.update(changes)
    with h5py.File(dst, "w") as f:
        for k, v in arrays.items():
            if v is not None:
                f[k] = v
    return dst


def _error(exc_type, path_or_name, *fragments, **kwargs):
    with pytest.raises(exc_type) as info:
        load_dataset(path_or_name, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and isinstance(info.value, OffregError)
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)
    return msg


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.hdf5"
    write_d4rl_file(path, "hopper", n_episodes=3)
    return path


def test_truncated_hdf5(tmp_path, good):
    bad = tmp_path / "truncated.hdf5"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _error(DatasetError, bad, str(bad), "truncated or corrupt", "download or generate it again")


def test_corrupt_hdf5(tmp_path):
    bad = tmp_path / "corrupt.hdf5"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    _error(DatasetError, bad, str(bad), "not a readable HDF5 file")


def test_missing_key(tmp_path, good):
    bad = _rewrite(good, tmp_path / "nokey.hdf5", actions=None)
    _error(DatasetError, bad, str(bad), "no 'actions' array")


def test_wrong_dtype(tmp_path, good):
    n = h5py.File(good, "r")["rewards"].shape[0]
    bad = _rewrite(good, tmp_path / "dtype.hdf5", observations=np.zeros((n, 11), np.int64))
    _error(DatasetError, bad, "'observations' has dtype int64", "floating-point")


def test_wrong_flag_values(tmp_path, good):
    n = h5py.File(good, "r")["rewards"].shape[0]
    bad = _rewrite(good, tmp_path / "flags.hdf5", terminals=np.full(n, 2.0))
    _error(DatasetError, bad, "'terminals' holds values other than 0/1")


def test_wrong_shape(tmp_path, good):
    n = h5py.File(good, "r")["rewards"].shape[0]
    bad = _rewrite(good, tmp_path / "shape.hdf5", rewards=np.zeros((n, 2), np.float32))
    _error(DatasetError, bad, "'rewards' has shape", "expected (N,)")


def test_mismatched_lengths(tmp_path, good):
    n = h5py.File(good, "r")["rewards"].shape[0]
    bad = _rewrite(good, tmp_path / "len.hdf5", actions=np.zeros((n - 3, 3), np.float32))
    _error(DatasetError, bad, f"'actions' has {n - 3} rows but 'rewards' has {n}", "same length")


def test_nan_and_inf_are_counted_per_key(tmp_path, good):
    with h5py.File(good, "r") as f:
        obs = f["observations"][()]
    obs[3, 1] = np.nan
    obs[7, 0] = np.inf
    obs[9, 2] = -np.inf
    bad = _rewrite(good, tmp_path / "nan.hdf5", observations=obs)
    _error(DatasetError, bad, "'observations' has 3 NaN/Inf values")


def test_empty_dataset(tmp_path, good):
    bad = _rewrite(
        good, tmp_path / "empty.hdf5", observations=np.zeros((0, 11), np.float32), actions=np.zeros((0, 3), np.float32),
        rewards=np.zeros(0, np.float32), terminals=np.zeros(0, bool), timeouts=np.zeros(0, bool),
    )
    _error(DatasetError, bad, "is empty (0 rows)")


def test_dims_do_not_match_environment(tmp_path):
    path = tmp_path / "walker.hdf5"
    write_d4rl_file(path, "walker2d", n_episodes=2)
    _error(DatasetError, path, "observations have 17 dims but environment 'hopper' has 11", env="hopper")
    # a D4RL name in the cache holding another environment's data
    cache = tmp_path / "d4rl"
    cache.mkdir()
    os.replace(path, cache / "hopper_medium-v2.hdf5")
    _error(DatasetError, "hopper-medium-v2", "observations have 17 dims")


def test_unknown_name_suggests_closest(tmp_path):
    msg = _error(UnknownNameError, "hoper-medium-v2", "unknown dataset 'hoper-medium-v2'", "hopper-medium-v2")
    assert "offreg datasets list" in msg


def test_name_escaping_the_cache_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # none of these names is a file here (an existing file gets its own message)
    for name, shown in [("../../no/passwd", "../../no/passwd"), ("d4rl/../x", "../x"),
                        ("minari/../../secret", "../../secret"), ("offreg/../../x", "../../x"),
                        ("/no/such/passwd", "/no/such/passwd")]:
        _error(DatasetError, name, repr(shown), "escape the cache directory")
    assert not (tmp_path / "secret").exists() and not (tmp_path / "x").exists()


def test_missing_file_without_download_says_how_to_get_it(tmp_path):
    msg = _error(DatasetError, "hopper-medium-v2", "not cached", "offreg datasets download hopper-medium-v2",
                 "hopper_medium-v2.hdf5", download=False)
    assert str(tmp_path / "d4rl") in msg


def test_missing_local_file(tmp_path):
    _error(DatasetError, tmp_path / "nope.hdf5", "does not exist")


def test_directory_given_as_dataset(tmp_path, monkeypatch):
    from offreg.data import download_dataset

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "dir.hdf5").mkdir()
    for given in (tmp_path / "runs", "runs", "./runs", tmp_path / "dir.hdf5", "dir.hdf5"):
        msg = _error(DatasetError, given, "is a directory; give a D4RL .hdf5/.h5 (or .npz) file")
        assert "does not exist" not in msg and "escape" not in msg
        with pytest.raises(DatasetError, match="is a directory"):
            download_dataset(str(given))


def test_unsupported_file_type(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a dataset")
    (tmp_path / "noext").write_text("not a dataset")
    for given, kind in [(tmp_path / "notes.txt", ".txt"), ("notes.txt", ".txt"), ("./missing.csv", ".csv"),
                        ("/no/such/data.pkl", ".pkl"), (tmp_path / "noext", "(no extension)")]:
        msg = _error(DatasetError, given, f"unsupported file type {kind}", "offreg reads D4RL .hdf5/.h5 files")
        assert "escape" not in msg and "does not exist" not in msg


def test_unreadable_file_is_not_called_corrupt(good, monkeypatch):
    """Permission denied, simulated: tests run as root, for whom ``chmod 000`` still reads."""
    import builtins

    real_open = builtins.open

    def deny(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(good):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    msg = _error(DatasetError, good, f"cannot read dataset file {good}: permission denied; fix its permissions")
    assert "corrupt" not in msg and "delete" not in msg


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads a chmod 000 file")
def test_unreadable_file_for_real(good):
    good.chmod(0)
    try:
        _error(DatasetError, good, "permission denied; fix its permissions")
    finally:
        good.chmod(0o644)


def test_failing_generator_leaves_no_file(tmp_path, monkeypatch):
    from offreg.data import generated

    def build(path):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(generated, "_GENERATED", {})
    generated.register_generated(generated.GeneratedSpec("broken-v0", "hopper", "test", build))
    _error(DatasetError, "offreg/broken-v0", "generating dataset 'offreg/broken-v0' failed", "simulated crash")
    assert not any((tmp_path / "offreg").iterdir())


def test_generator_writing_invalid_data_leaves_no_file(tmp_path, monkeypatch):
    from offreg.data import generated

    def build(path):
        write_d4rl_file(path, "hopper", n_episodes=2)
        with h5py.File(path, "r+") as f:
            f["rewards"][4] = np.nan

    monkeypatch.setattr(generated, "_GENERATED", {})
    generated.register_generated(generated.GeneratedSpec("nan-v0", "hopper", "test", build))
    _error(DatasetError, "offreg/nan-v0", "offreg/nan-v0", "'rewards' has 1 NaN/Inf values")
    assert not any((tmp_path / "offreg").iterdir())


def test_env_argument_only_for_files():
    from offreg.errors import ConfigError

    _error(ConfigError, "hopper-medium-v2", "env='walker2d' only applies to a local file", env="walker2d")
