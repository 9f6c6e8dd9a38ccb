"""PRDC's neighbour index is built once per dataset, ever: the on-disk cache, its key and its distrust."""

import jax
import numpy as np
import pytest

from offreg.agents import neighbour_index as ni
from offreg.agents.prdc import PRDC


def _data(n=600, ds=4, da=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, ds)).astype(np.float32), rng.uniform(-1, 1, (n, da)).astype(np.float32)


@pytest.fixture
def builds(monkeypatch):
    """Counts the index builds (the KD-tree part) behind build_or_load."""
    calls = []
    real = ni.build_arrays

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(ni, "build_arrays", counting)
    return calls


def _same(x, y):
    for name, a, b in zip(ni.NeighbourIndex._fields, x, y, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)


def test_second_build_loads_the_cached_file(tmp_path, builds):
    s, a = _data()
    first = ni.build_or_load(s, a, leaf_size=8, directory=tmp_path)
    (path,) = tmp_path.glob("prdc-*.npz")
    assert path.name == f"prdc-{ni.fingerprint(s, a, 8)}.npz"
    second = ni.build_or_load(s.copy(), a.copy(), leaf_size=8, directory=tmp_path)
    assert len(builds) == 1  # loaded, not rebuilt
    _same(first, second)
    _same(first, ni.build_index(s, a, leaf_size=8))  # and it is what a fresh build gives
    with np.load(path, allow_pickle=False) as f:  # no pickled object anywhere in the file
        assert all(f[name].dtype != object for name in f.files)


def test_prdc_context_caches_beside_the_datasets_and_shares_across_beta(tmp_path, monkeypatch, builds):
    from numpy_reference import toy_dataset

    from offreg.agents.td3 import TD3Config

    monkeypatch.setenv("OFFREG_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("OFFREG_INDEX_CACHE", raising=False)
    ds = toy_dataset(n=300)
    pds = TD3Config(regularizer=PRDC()).prepare(ds)
    contexts = [PRDC(beta=b, index_leaf_size=4, search_chunk=c).build(None).context(pds)
                for b, c in ((2.0, 8), (0.5, 8), (7.5, 16))]  # beta and search settings are not in the key
    assert len(builds) == 1 and len(list((tmp_path / "neighbour_index").glob("prdc-*.npz"))) == 1
    _same(contexts[0], contexts[2])
    PRDC(index_leaf_size=6).build(None).context(pds)  # another leaf size: another index
    raw = ds.transitions.observations  # other normalization (none): other states, another index
    ni.build_or_load(np.asarray(raw), np.asarray(pds.transitions.actions), leaf_size=4)
    assert len(builds) == 3 and len(list((tmp_path / "neighbour_index").glob("prdc-*.npz"))) == 3


def test_the_key_covers_the_bytes_the_shapes_and_the_leaf_size():
    s, a = _data()
    key = ni.fingerprint(s, a, 8)
    assert key == ni.fingerprint(s.copy(), a.copy(), 8)
    s2 = s.copy()
    s2[123, 2] = np.nextafter(s2[123, 2], np.float32(np.inf))  # one ulp of one value
    assert len({key, ni.fingerprint(s2, a, 8), ni.fingerprint(s, a, 9),
                ni.fingerprint(s.reshape(300, 8), a, 8)}) == 4


def _corrupt_truncated(path, key, arrays):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _corrupt_garbage(path, key, arrays):
    path.write_bytes(b"not a zip file at all")


def _corrupt_wrong_key(path, key, arrays):
    with open(path, "wb") as f:
        np.savez(f, cache_key=np.array("0" * 32), **arrays)


def _corrupt_other_rows(path, key, arrays):  # right key, but not this dataset's rows
    with open(path, "wb") as f:
        np.savez(f, cache_key=np.array(key), **{**arrays, "actions": arrays["actions"] + np.float32(1.0)})


def _corrupt_missing_array(path, key, arrays):
    with open(path, "wb") as f:
        np.savez(f, cache_key=np.array(key), **{k: v for k, v in arrays.items() if k != "split_val"})


def _corrupt_wrong_shape(path, key, arrays):
    with open(path, "wb") as f:
        np.savez(f, cache_key=np.array(key), **{**arrays, "lo": arrays["lo"][:, :3]})


def _corrupt_shrunk_box(path, key, arrays):  # right key, shapes and rows, but a box that misses a row
    lo = arrays["lo"].copy()
    lo[-1] = arrays["hi"][-1]  # the last leaf's box shrunk to its upper corner
    with open(path, "wb") as f:
        np.savez(f, cache_key=np.array(key), **{**arrays, "lo": lo})


def _corrupt_flipped_byte(path, key, arrays):
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the stored arrays: the zip CRC catches it
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("corrupt", [_corrupt_truncated, _corrupt_garbage, _corrupt_wrong_key, _corrupt_other_rows,
                                     _corrupt_missing_array, _corrupt_wrong_shape, _corrupt_shrunk_box,
                                     _corrupt_flipped_byte])
def test_an_unusable_cache_file_is_rebuilt_with_a_note(tmp_path, builds, capsys, corrupt):
    s, a = _data(seed=1)
    good = ni.build_or_load(s, a, leaf_size=8, directory=tmp_path)
    (path,) = tmp_path.glob("prdc-*.npz")
    with np.load(path, allow_pickle=False) as f:
        arrays = {name: f[name] for name in f.files if name != "cache_key"}
    corrupt(path, ni.fingerprint(s, a, 8), arrays)
    capsys.readouterr()
    again = ni.build_or_load(s, a, leaf_size=8, directory=tmp_path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(builds) == 2, "the bad file was trusted"
    assert len(err) == 1 and err[0].startswith("note: PRDC's neighbour index cache") and "rebuilding" in err[0], err
    _same(good, again)
    ni.build_or_load(s, a, leaf_size=8, directory=tmp_path)  # the rebuilt file replaced the bad one
    assert len(builds) == 2 and capsys.readouterr().err == ""
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


def test_cache_can_be_moved_or_turned_off(tmp_path, monkeypatch, builds):
    s, a = _data(n=200)
    monkeypatch.setenv("OFFREG_INDEX_CACHE", "off")
    assert ni.cache_dir() is None
    ni.build_or_load(s, a, leaf_size=4)
    ni.build_or_load(s, a, leaf_size=4)
    assert len(builds) == 2
    monkeypatch.setenv("OFFREG_INDEX_CACHE", str(tmp_path / "idx"))
    ni.build_or_load(s, a, leaf_size=4)
    ni.build_or_load(s, a, leaf_size=4)
    assert len(builds) == 3 and len(list((tmp_path / "idx").glob("prdc-*.npz"))) == 1
    monkeypatch.delenv("OFFREG_INDEX_CACHE")
    monkeypatch.setenv("OFFREG_DATA_DIR", str(tmp_path / "data"))
    assert ni.cache_dir() == tmp_path / "data" / "neighbour_index"


def test_a_read_only_cache_still_trains(tmp_path, builds, capsys):
    s, a = _data(n=200)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would go")
    index = ni.build_or_load(s, a, leaf_size=4, directory=blocker / "sub")
    assert "could not cache" in capsys.readouterr().err
    _same(index, jax.tree_util.tree_map(np.asarray, ni.build_index(s, a, leaf_size=4)))
