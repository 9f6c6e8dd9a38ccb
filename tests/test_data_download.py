"""Downloads against a real HTTP server on 127.0.0.1 (with Range support), started in the test."""

import hashlib
import http.server
import threading
import time

import numpy as np
import pytest
from d4rl_files import expected_qlearning, write_d4rl_file

from offreg.data import CATALOGUE, download_dataset, load_dataset
from offreg.data.download import partial_path
from offreg.errors import DownloadError

ENTRY = CATALOGUE["hopper-medium-v2"]


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files[path]`` honouring ``Range``; ``server.behaviour`` scripts failures."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        mode = srv.behaviour.pop(0) if srv.behaviour else "ok"
        if mode in ("404", "500"):
            self.send_response(int(mode))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "slow":
            time.sleep(1.0)
        body = srv.files.get(self.path.split("/", 2)[-1])
        if body is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if mode == "truncate":  # promise the whole body, send a third, close the connection
            self.wfile.write(payload[: len(payload) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OFFREG_DATA_DIR", str(tmp_path / "offreg"))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.requests, srv.behaviour, srv.files = [], [], {}
    src = tmp_path / "src.hdf5"
    srv.arrays = write_d4rl_file(src, "hopper", n_episodes=30)
    srv.files[ENTRY.path] = src.read_bytes()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OFFREG_D4RL_BASE_URL", f"http://127.0.0.1:{srv.server_address[1]}/d4rl")
    yield srv
    srv.shutdown()
    srv.server_close()


def _fast(**kw):
    return {"retries": 2, "backoff": 0.0, "timeout": 0.3, "progress": False, **kw}


def _cache_files(tmp_path):
    cache = tmp_path / "cache"
    return sorted(p.name for p in cache.iterdir() if p.is_file()) if cache.exists() else []


def test_download_then_load_from_cache(server, tmp_path):
    path = download_dataset("hopper-medium-v2", **_fast())
    assert path == tmp_path / "cache" / "hopper_medium-v2.hdf5"
    assert path.read_bytes() == server.files[ENTRY.path]
    assert server.requests == [("/d4rl/" + ENTRY.path, None)]
    with pytest.warns(UserWarning, match="catalogue expects"):
        ds = load_dataset("d4rl/hopper-medium-v2", download=False)
    np.testing.assert_array_equal(np.asarray(ds.transitions.observations),
                                  expected_qlearning(server.arrays)["observations"])
    download_dataset("hopper-medium-v2", **_fast())  # cached: no new request
    assert len(server.requests) == 1
    assert not partial_path(path).exists()


def test_resume_after_interrupted_transfer(server, tmp_path):
    server.behaviour = ["truncate"]
    body = server.files[ENTRY.path]
    path = download_dataset("hopper-medium-v2", sha256=hashlib.sha256(body).hexdigest(), **_fast())
    assert path.read_bytes() == body
    (first, r1), (second, r2) = server.requests
    assert r1 is None and r2 == f"bytes={len(body) // 3}-"  # the second request resumed the partial file


def test_interrupted_download_resumes_in_a_later_call(server, tmp_path):
    server.behaviour = ["truncate"] * 3
    with pytest.raises(DownloadError, match="after 3 attempts .*(cut short|connection closed).*partial file"):
        download_dataset("hopper-medium-v2", **_fast())
    assert _cache_files(tmp_path) == []  # nothing half-written under the final name
    dest = tmp_path / "cache" / "hopper_medium-v2.hdf5"
    assert partial_path(dest).exists()
    path = download_dataset("hopper-medium-v2", **_fast())
    assert path.read_bytes() == server.files[ENTRY.path]
    assert server.requests[-1][1] is not None and server.requests[-1][1].startswith("bytes=")


def test_404_fails_at_once(server, tmp_path):
    server.behaviour = ["404"]
    with pytest.raises(DownloadError, match=r"hopper-medium-v2.*HTTP 404.*OFFREG_D4RL_BASE_URL"):
        download_dataset("hopper-medium-v2", **_fast())
    assert len(server.requests) == 1 and _cache_files(tmp_path) == []


def test_500_is_retried_then_fails(server, tmp_path):
    server.behaviour = ["500"] * 3
    with pytest.raises(DownloadError) as info:
        download_dataset("hopper-medium-v2", **_fast())
    msg = str(info.value)
    assert "HTTP 500" in msg and "after 3 attempts" in msg and "offreg datasets download hopper-medium-v2" in msg
    assert len(server.requests) == 3 and _cache_files(tmp_path) == []


def test_500_then_success(server):
    server.behaviour = ["500"]
    path = download_dataset("hopper-medium-v2", **_fast())
    assert path.read_bytes() == server.files[ENTRY.path] and len(server.requests) == 2


def test_timeout(server, tmp_path):
    server.behaviour = ["slow"] * 2
    with pytest.raises(DownloadError, match="timed out"):
        download_dataset("hopper-medium-v2", **_fast(retries=1))
    assert _cache_files(tmp_path) == []


def test_checksum_mismatch_deletes_everything(server, tmp_path):
    with pytest.raises(DownloadError, match="SHA-256"):
        download_dataset("hopper-medium-v2", sha256="0" * 64, **_fast())
    dest = tmp_path / "cache" / "hopper_medium-v2.hdf5"
    assert _cache_files(tmp_path) == [] and not partial_path(dest).exists()


def test_not_hdf5_is_rejected_before_entering_the_cache(server, tmp_path):
    server.files[ENTRY.path] = b"<html>not found</html>" * 10
    with pytest.raises(Exception, match="not a readable HDF5 file"):
        download_dataset("hopper-medium-v2", **_fast())
    assert _cache_files(tmp_path) == []


def test_no_network_message(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OFFREG_D4RL_BASE_URL", "http://127.0.0.1:9/")  # nothing listens on port 9
    waits = []
    monkeypatch.setattr("offreg.data.download._sleep", waits.append)
    with pytest.raises(DownloadError) as info:
        load_dataset("walker2d-expert-v2", progress=False)
    msg = str(info.value)
    for fragment in ("walker2d_expert-v2.hdf5", str(tmp_path / "cache"), "offreg datasets download walker2d-expert-v2",
                     "network error"):
        assert fragment in msg
    assert "\n" not in msg and _cache_files(tmp_path) == []
    assert waits == [1.0, 2.0, 4.0, 8.0]  # default: 4 retries with exponential backoff


def test_unresolvable_host_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OFFREG_D4RL_BASE_URL", "http://offreg-test.invalid/")  # .invalid never resolves
    waits = []
    monkeypatch.setattr("offreg.data.download._sleep", waits.append)
    with pytest.raises(DownloadError, match="cannot resolve the host.*copy it to"):
        download_dataset("hopper-expert-v2", progress=False)
    assert waits == [] and _cache_files(tmp_path) == []


def test_concurrent_downloads_fetch_once(server):
    server.behaviour = ["slow"]  # the first transfer takes a second: the other call must wait for it
    results = []
    threads = [threading.Thread(target=lambda: results.append(download_dataset("hopper-medium-v2",
                                                                               **_fast(timeout=5.0))))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1]
    assert results[0].read_bytes() == server.files[ENTRY.path] and len(server.requests) == 1


def _partial_dir(tmp_path):
    return tmp_path / "cache" / ".partial"


def test_failed_download_leaves_no_lock(server, tmp_path):
    server.behaviour = ["404"]
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_dataset("hopper-medium-v2", **_fast())
    assert not _partial_dir(tmp_path).exists()  # no lock, and no empty .partial folder either
    server.behaviour = ["truncate"] * 3  # retries exhausted: the partial file stays for the next call, the lock goes
    with pytest.raises(DownloadError, match="after 3 attempts"):
        download_dataset("hopper-medium-v2", **_fast())
    assert [p.name for p in _partial_dir(tmp_path).iterdir()] == ["hopper_medium-v2.hdf5.part"]
    download_dataset("hopper-medium-v2", **_fast())
    assert not _partial_dir(tmp_path).exists()


def test_stale_locks_are_removed_on_the_next_run(server, tmp_path):
    import fcntl

    partial = _partial_dir(tmp_path)
    partial.mkdir(parents=True)
    stale = [partial / "hopper_medium-v2.hdf5.part.lock", partial / "walker2d_expert-v2.hdf5.part.lock"]
    for p in stale:  # left by processes killed with -9: nobody holds them
        p.touch()
    held = partial / "ant_expert-v2.hdf5.part.lock"
    with open(held, "a") as fh:  # another process is downloading this one right now: its lock must stay
        fcntl.flock(fh, fcntl.LOCK_EX)
        download_dataset("hopper-medium-v2", **_fast())
        assert sorted(p.name for p in partial.iterdir()) == [held.name]
