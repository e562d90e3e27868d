"""zoo.weights.download.download_file against a real loopback HTTP server (tests/servers.py)."""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zoo.errors import DownloadError, HashMismatchError, OfflineError
from zoo.weights.download import DownloadHashMismatchError, download_file

REPO = Path(__file__).resolve().parents[1]
DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()
MD5 = hashlib.md5(DATA).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    """Temporary download files anywhere under ``folder``."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".part"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_success_with_progress_bar(file_server, tmp_path, capsys):
    srv = file_server({"w/model.pt": DATA})
    dest = tmp_path / "sub" / "model.pt"  # parent folder does not exist yet
    out = download_file(srv.url("w/model.pt"), dest, sha256=SHA, md5=MD5)
    assert out == dest
    assert dest.read_bytes() == DATA
    assert srv.requests == ["w/model.pt"]
    err = capsys.readouterr().err
    assert "model.pt" in err and "100%" in err  # tqdm bar with a known total
    assert _leftovers(tmp_path) == []


def test_progress_false_prints_nothing(file_server, tmp_path, capsys):
    srv = file_server({"a.bin": DATA})
    download_file(srv.url("a.bin"), tmp_path / "a.bin", progress=False)
    assert (tmp_path / "a.bin").read_bytes() == DATA
    assert capsys.readouterr().err == ""


def test_no_hash_given_downloads_and_returns(file_server, tmp_path):
    srv = file_server({"a.bin": b"x" * 10})
    assert download_file(srv.url("a.bin"), tmp_path / "a.bin", progress=False).read_bytes() == b"x" * 10


@pytest.mark.parametrize("status", ["404", "500"])
def test_http_error_status(file_server, tmp_path, status):
    srv = file_server({"a.bin": DATA})
    srv.set_fault("a.bin", status)
    dest = tmp_path / "a.bin"
    url = srv.url("a.bin")
    with pytest.raises(DownloadError) as info:
        download_file(url, dest, sha256=SHA, progress=False)
    assert f"HTTP {status}" in str(info.value) and url in str(info.value)
    assert not dest.exists()
    assert _leftovers(tmp_path) == []


def test_missing_path_is_404(file_server, tmp_path):
    srv = file_server({})
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(srv.url("nope.bin"), tmp_path / "nope.bin", progress=False)
    assert list(tmp_path.glob("nope.bin*")) in ([], [tmp_path / "nope.bin.lock"])


def test_truncated_body(file_server, tmp_path):
    srv = file_server({"a.bin": DATA})
    srv.set_fault("a.bin", "truncate")
    dest = tmp_path / "a.bin"
    url = srv.url("a.bin")
    with pytest.raises(DownloadError) as info:
        download_file(url, dest, sha256=SHA, progress=False)
    msg = str(info.value)
    assert url in msg and str(len(DATA)) in msg and str(len(DATA) // 2) in msg, msg
    assert not dest.exists()
    assert _leftovers(tmp_path) == []


def test_interrupted_download_then_retry_succeeds(file_server, tmp_path):
    srv = file_server({"a.bin": DATA})
    srv.set_fault("a.bin", "reset")
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError) as info:
        download_file(srv.url("a.bin"), dest, sha256=SHA, progress=False)
    assert srv.url("a.bin") in str(info.value)
    assert not dest.exists()
    assert _leftovers(tmp_path) == []

    srv.set_fault("a.bin", None)
    assert download_file(srv.url("a.bin"), dest, sha256=SHA, progress=False).read_bytes() == DATA
    assert _leftovers(tmp_path) == []


def test_wrong_sha256(file_server, tmp_path):
    srv = file_server({"a.bin": DATA})
    dest = tmp_path / "a.bin"
    wrong = "0" * 64
    with pytest.raises(HashMismatchError) as info:
        download_file(srv.url("a.bin"), dest, sha256=wrong, progress=False)
    err = info.value
    assert isinstance(err, DownloadHashMismatchError)
    assert (err.expected, err.actual, err.path) == (wrong, SHA, dest)
    msg = str(err)
    assert str(dest) in msg and wrong in msg and SHA in msg and srv.url("a.bin") in msg
    assert not dest.exists()
    assert _leftovers(tmp_path) == []


def test_wrong_md5(file_server, tmp_path):
    srv = file_server({"a.bin": DATA})
    with pytest.raises(HashMismatchError, match="MD5 mismatch") as info:
        download_file(srv.url("a.bin"), tmp_path / "a.bin", sha256=SHA, md5="f" * 32, progress=False)
    assert info.value.actual == MD5
    assert not (tmp_path / "a.bin").exists()


def test_uppercase_hash_is_accepted(file_server, tmp_path):
    srv = file_server({"a.bin": DATA})
    download_file(srv.url("a.bin"), tmp_path / "a.bin", sha256=SHA.upper(), progress=False)
    assert (tmp_path / "a.bin").read_bytes() == DATA


def test_verified_existing_file_is_not_downloaded_again(file_server, tmp_path):
    srv = file_server({"a.bin": DATA})
    dest = tmp_path / "a.bin"
    download_file(srv.url("a.bin"), dest, sha256=SHA, progress=False)
    assert len(srv.requests) == 1
    download_file(srv.url("a.bin"), dest, sha256=SHA, progress=False)
    assert len(srv.requests) == 1


def test_stale_existing_file_is_replaced(file_server, tmp_path):
    srv = file_server({"a.bin": DATA})
    dest = tmp_path / "a.bin"
    dest.write_bytes(b"old and wrong")
    download_file(srv.url("a.bin"), dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA


@pytest.mark.parametrize("fault", ["404", "500", "truncate", "reset", "badhash"])
def test_existing_good_file_not_clobbered_by_failed_download(file_server, tmp_path, fault):
    good = b"good weights v1"
    srv = file_server({"a.bin": good})
    dest = tmp_path / "a.bin"
    download_file(srv.url("a.bin"), dest, progress=False)
    assert dest.read_bytes() == good

    srv.set_file("a.bin", DATA)  # the server now has other bytes
    expected_hash = SHA
    if fault == "badhash":
        expected_hash = hashlib.sha256(b"something else").hexdigest()
    else:
        srv.set_fault("a.bin", fault)
    with pytest.raises((DownloadError, HashMismatchError)):
        download_file(srv.url("a.bin"), dest, sha256=expected_hash, progress=False)
    assert dest.read_bytes() == good
    assert _leftovers(tmp_path) == []


def test_timeout_during_body(file_server, tmp_path):
    srv = file_server({"a.bin": DATA}, slow_delay=1.0)
    srv.set_fault("a.bin", "slow")
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match="Timed out") as info:
        download_file(srv.url("a.bin"), tmp_path / "a.bin", progress=False, timeout=0.3)
    assert time.monotonic() - t0 < 5
    assert srv.url("a.bin") in str(info.value)
    assert not (tmp_path / "a.bin").exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("var", ["ZOO_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_raises_without_any_request(file_server, tmp_path, monkeypatch, var):
    srv = file_server({"a.bin": DATA})
    monkeypatch.setenv(var, "1")  # read at call time
    dest = tmp_path / "a.bin"
    url = srv.url("a.bin")
    with pytest.raises(OfflineError) as info:
        download_file(url, dest, sha256=SHA, progress=False)
    assert url in str(info.value) and str(dest) in str(info.value) and var in str(info.value)
    assert srv.requests == []
    assert not dest.exists()


def test_offline_returns_existing_verified_file(file_server, tmp_path, monkeypatch):
    srv = file_server({"a.bin": DATA})
    dest = tmp_path / "a.bin"
    dest.write_bytes(DATA)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert download_file(srv.url("a.bin"), dest, sha256=SHA, progress=False) == dest
    assert srv.requests == []
    # ... but an existing file that does not verify is not good enough.
    dest.write_bytes(b"corrupt")
    with pytest.raises(OfflineError):
        download_file(srv.url("a.bin"), dest, sha256=SHA, progress=False)
    assert srv.requests == []


def test_offline_false_values_are_online(file_server, tmp_path, monkeypatch):
    srv = file_server({"a.bin": DATA})
    monkeypatch.setenv("ZOO_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "")
    download_file(srv.url("a.bin"), tmp_path / "a.bin", progress=False)
    assert srv.requests == ["a.bin"]


def test_unreachable_host_fails_fast(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/a.bin"
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match="Could not reach") as info:
        download_file(url, tmp_path / "a.bin", progress=False, timeout=5)
    assert time.monotonic() - t0 < 2
    assert url in str(info.value)
    assert list(tmp_path.glob("a.bin*")) in ([], [tmp_path / "a.bin.lock"])


_CHILD = r"""
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from zoo.weights.download import download_file
url, dest, sha, ready, go = sys.argv[2], Path(sys.argv[3]), sys.argv[4] or None, Path(sys.argv[5]), Path(sys.argv[6])
ready.touch()
deadline = time.monotonic() + 30
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("never got the go signal")
    time.sleep(0.01)
out = download_file(url, dest, sha256=sha, progress=False, timeout=30)
print(out.stat().st_size)
"""


@pytest.mark.parametrize("with_hash", [True, False], ids=["sha256", "nohash"])
def test_two_processes_same_dest(file_server, tmp_path, with_hash):
    srv = file_server({"a.bin": DATA}, slow_delay=0.05)  # ~1 s per download
    srv.set_fault("a.bin", "slow")
    dest = tmp_path / "shared" / "a.bin"
    go = tmp_path / "go"
    procs, readies = [], []
    for i in range(2):
        ready = tmp_path / f"ready{i}"
        readies.append(ready)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(REPO), srv.url("a.bin"), str(dest), SHA if with_hash else "",
                 str(ready), str(go)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        deadline = time.monotonic() + 30
        while not all(r.exists() for r in readies):
            assert time.monotonic() < deadline, "children did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.01)
        go.touch()  # release both at once
        results = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert out.strip() == str(len(DATA))
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == SHA
    # The lock serialises them; with a hash the second finds the verified file and skips the request.
    assert len(srv.requests) == (1 if with_hash else 2)
    assert _leftovers(tmp_path) == []


def test_a_killed_download_leaves_a_partial_file_that_the_next_download_removes(file_server, tmp_path):
    srv = file_server({"a.bin": DATA}, slow_delay=0.05)
    srv.set_fault("a.bin", "slow")
    dest = tmp_path / "cache" / "a.bin"
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                              "from zoo.weights.download import download_file; "
                              "download_file(sys.argv[2], __import__('pathlib').Path(sys.argv[3]), progress=False)",
                              str(REPO), srv.url("a.bin"), str(dest)])
    deadline = time.monotonic() + 30
    while not list(dest.parent.glob("a.bin.*.part")):
        assert time.monotonic() < deadline and child.poll() is None, "the child never started writing"
        time.sleep(0.01)
    child.kill()
    child.wait()
    stale = list(dest.parent.glob("a.bin.*.part"))
    assert stale, "SIGKILL leaves the partial file behind"
    srv.set_fault("a.bin", None)
    download_file(srv.url("a.bin"), dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA
    assert _leftovers(tmp_path) == [], "the stale partial file is cleaned by the next download of the same file"
