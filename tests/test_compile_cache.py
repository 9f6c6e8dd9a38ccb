"""The persistent compilation cache: a second process's ``offreg.train`` loads the programs the first compiled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from offreg.engine.compile_cache import MAX_BYTES, enable_compile_cache

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, jax, offreg
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
offreg.train("bc", "offreg/hopper-medium-replay-v0", steps=4, log_every=2, eval_every=0, progress=False)
print(json.dumps({"hits": events.count("/jax/compilation_cache/cache_hits"),
                  "misses": events.count("/jax/compilation_cache/cache_misses"),
                  "dir": jax.config.jax_compilation_cache_dir}))
"""


def _child(env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_loads_the_compiled_programs(tmp_path):
    cache = tmp_path / "cc"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "OFFREG_COMPILE_CACHE": str(cache),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "PYTHONPATH": str(ROOT)}
    first = _child(env)
    assert first["dir"] == str(cache) and first["hits"] == 0 and first["misses"] >= 1
    entries = sorted(p.name for p in cache.iterdir())
    assert any("chunk" in name for name in entries), entries  # the engine's training program is cached
    second = _child(env)
    assert second["hits"] >= 1 and second["misses"] == 0, second
    assert sorted(p.name for p in cache.iterdir()) == entries  # nothing compiled anew

    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    off = _child({**env, "OFFREG_COMPILE_CACHE": "off"})
    assert not off["dir"] and off["hits"] == 0


@pytest.fixture
def restore_cache_config():
    before = (jax.config.jax_compilation_cache_dir, jax.config.jax_compilation_cache_max_size)
    yield
    jax.config.update("jax_compilation_cache_dir", before[0])
    jax.config.update("jax_compilation_cache_max_size", before[1])


def test_settings(monkeypatch, tmp_path, restore_cache_config):
    jax.config.update("jax_compilation_cache_dir", None)
    monkeypatch.setenv("OFFREG_COMPILE_CACHE", "off")
    assert enable_compile_cache() is None and jax.config.jax_compilation_cache_dir is None
    monkeypatch.delenv("OFFREG_COMPILE_CACHE")
    monkeypatch.setenv("OFFREG_DATA_DIR", str(tmp_path / "data"))
    assert enable_compile_cache() == tmp_path / "data" / "compile_cache"
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "data" / "compile_cache")
    assert not (tmp_path / "data").exists()  # made by JAX at the first compilation, not here
    assert jax.config.jax_compilation_cache_max_size == MAX_BYTES
    # a folder the user chose for JAX is kept, whatever offreg's setting
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "mine"))
    monkeypatch.setenv("OFFREG_COMPILE_CACHE", str(tmp_path / "other"))
    assert enable_compile_cache() == tmp_path / "mine"
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "mine")


def test_without_filelock_the_cache_is_on_but_not_capped(monkeypatch, tmp_path, restore_cache_config):
    jax.config.update("jax_compilation_cache_dir", None)
    jax.config.update("jax_compilation_cache_max_size", -1)
    monkeypatch.setitem(sys.modules, "filelock", None)  # import filelock -> ImportError
    monkeypatch.setenv("OFFREG_COMPILE_CACHE", str(tmp_path / "cc"))
    assert enable_compile_cache() == tmp_path / "cc"
    assert jax.config.jax_compilation_cache_max_size == -1


def test_an_unusable_folder_gives_a_note_and_no_cache(monkeypatch, tmp_path, capsys, restore_cache_config):
    jax.config.update("jax_compilation_cache_dir", None)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("OFFREG_COMPILE_CACHE", str(blocker / "cc"))
    assert enable_compile_cache() is None and jax.config.jax_compilation_cache_dir is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(blocker / "cc") in err[0] and "OFFREG_COMPILE_CACHE" in err[0], err
    assert blocker.read_text() == "x"  # nothing written over it
