"""zoo.weights.hf_hub against HubServer (tests/servers.py) with the real huggingface_hub client."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.errors import DownloadError, OfflineError
from zoo.weights.hf_hub import PushError, hf_download, push_folder

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = os.urandom(50_000)
CONFIG = b'{"hidden": 128}'
REPOS = {"zoo-org/bp_mlp-mnist": {"model.safetensors": WEIGHTS, "sub/config.json": CONFIG}}
SHA_A = "a" * 40
SHA_B = "b" * 40


@pytest.fixture
def hub(hub_server, monkeypatch):
    """A HubServer with one repo; HF_ENDPOINT points at it (set after zoo.weights.hf_hub was imported)."""
    server = hub_server(REPOS, revision_sha=SHA_A)
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    return server


def test_download_through_endpoint_set_at_call_time(hub, _isolated_caches):
    path = hf_download("zoo-org/bp_mlp-mnist", "model.safetensors")
    assert path.read_bytes() == WEIGHTS
    assert Path(os.environ["HF_HUB_CACHE"]) in path.parents  # cache location read at call time too
    assert SHA_A in path.parts  # snapshots/<commit>/model.safetensors
    assert hub.requests == [
        "HEAD /zoo-org/bp_mlp-mnist/resolve/main/model.safetensors",
        "GET /zoo-org/bp_mlp-mnist/resolve/main/model.safetensors",
    ]


def test_nested_file_and_commit_revision(hub):
    assert hf_download("zoo-org/bp_mlp-mnist", "sub/config.json", revision=SHA_A).read_bytes() == CONFIG


def test_explicit_cache_dir(hub, tmp_path):
    path = hf_download("zoo-org/bp_mlp-mnist", "sub/config.json", cache_dir=tmp_path / "c")
    assert (tmp_path / "c") in path.parents and path.read_bytes() == CONFIG


@pytest.mark.parametrize("var", ["HF_HUB_OFFLINE", "ZOO_OFFLINE"])
def test_offline_second_call_uses_cache_without_requests(hub, monkeypatch, var):
    first = hf_download("zoo-org/bp_mlp-mnist", "model.safetensors")
    seen = list(hub.requests)
    monkeypatch.setenv(var, "1")
    second = hf_download("zoo-org/bp_mlp-mnist", "model.safetensors")
    assert second == first and second.read_bytes() == WEIGHTS
    assert hub.requests == seen  # not a single new request
    # The pinned commit is cached as well.
    assert hf_download("zoo-org/bp_mlp-mnist", "model.safetensors", revision=SHA_A) == first
    assert hub.requests == seen


def test_offline_not_cached(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError) as info:
        hf_download("zoo-org/bp_mlp-mnist", "model.safetensors", revision="v1")
    msg = str(info.value)
    for part in ("zoo-org/bp_mlp-mnist", "model.safetensors", "'v1'", "hf download"):
        assert part in msg, msg
    assert hub.requests == []


def test_missing_file(hub):
    with pytest.raises(DownloadError) as info:
        hf_download("zoo-org/bp_mlp-mnist", "nope.bin")
    msg = str(info.value)
    for part in ("zoo-org/bp_mlp-mnist", "nope.bin", "'main'", hub.endpoint, "does not exist"):
        assert part in msg, msg


def test_missing_repo(hub):
    with pytest.raises(DownloadError) as info:
        hf_download("zoo-org/no-such-repo", "model.safetensors")
    msg = str(info.value)
    for part in ("zoo-org/no-such-repo", "model.safetensors", hub.endpoint, "not found"):
        assert part in msg, msg


def test_missing_revision(hub):
    with pytest.raises(DownloadError) as info:
        hf_download("zoo-org/bp_mlp-mnist", "model.safetensors", revision="v9")
    assert "revision 'v9' does not exist" in str(info.value)


def test_endpoint_switch_between_calls(hub_server, monkeypatch):
    one = hub_server({"o/r": {"f.txt": b"one"}}, revision_sha=SHA_A)
    two = hub_server({"o/r": {"f.txt": b"two"}}, revision_sha=SHA_B)
    monkeypatch.setenv("HF_ENDPOINT", one.endpoint)
    assert hf_download("o/r", "f.txt").read_bytes() == b"one"
    monkeypatch.setenv("HF_ENDPOINT", two.endpoint + "/")  # trailing slash tolerated
    assert hf_download("o/r", "f.txt").read_bytes() == b"two"
    assert len(one.requests) == 2 and len(two.requests) == 2


def test_offline_at_import_online_at_call(hub, tmp_path):
    """huggingface_hub imported with HF_HUB_OFFLINE=1 freezes it; hf_download re-reads it."""
    code = (
        "import os, sys; sys.path.insert(0, sys.argv[1]);"
        "import huggingface_hub.constants as c; assert c.HF_HUB_OFFLINE;"  # frozen True at import
        "del os.environ['HF_HUB_OFFLINE'];"
        "from zoo.weights.hf_hub import hf_download;"
        "print(len(hf_download('zoo-org/bp_mlp-mnist', 'sub/config.json').read_bytes()))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    run = subprocess.run(
        [sys.executable, "-c", code, str(REPO)], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(len(CONFIG))


# ------------------------------------------------------------------------------- push_folder


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    (folder / "sub").mkdir(parents=True)
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# bp_mlp\n")
    (folder / "model.safetensors").write_bytes(WEIGHTS)
    (folder / "sub" / "config.json").write_bytes(CONFIG)
    return folder


def test_push_folder_round_trip(hub_server, monkeypatch, tmp_path):
    server = hub_server({})
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    url = push_folder(_folder(tmp_path), "me/new-model")
    head = server.head("me/new-model")
    assert url == f"{server.endpoint}/me/new-model/commit/{head}"
    assert server.files("me/new-model") == {
        "README.md": b"---\nlicense: mit\n---\n# bp_mlp\n",
        "model.safetensors": WEIGHTS,
        "sub/config.json": CONFIG,
    }
    assert hf_download("me/new-model", "model.safetensors").read_bytes() == WEIGHTS
    # Pushing again to the existing repo (exist_ok) makes a new commit.
    (tmp_path / "export" / "sub" / "config.json").write_bytes(b"{}")
    url2 = push_folder(tmp_path / "export", "me/new-model")
    assert url2 != url and server.files("me/new-model")["sub/config.json"] == b"{}"


def test_push_folder_to_branch(hub_server, monkeypatch, tmp_path):
    server = hub_server({"me/m": {"old.txt": b"old"}})
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    push_folder(_folder(tmp_path), "me/m", revision="v1")
    assert server.files("me/m") == {"old.txt": b"old"}  # main untouched
    assert server.files("me/m", "v1")["model.safetensors"] == WEIGHTS
    assert hf_download("me/m", "sub/config.json", revision="v1").read_bytes() == CONFIG


def test_push_folder_token(hub_server, monkeypatch, tmp_path):
    server = hub_server({}, token="hf_secret")
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    with pytest.raises(PushError) as info:
        push_folder(_folder(tmp_path), "me/m", token="hf_wrong")
    assert "me/m" in str(info.value) and "401" in str(info.value)
    assert push_folder(_folder(tmp_path / "again"), "me/m", token="hf_secret").startswith(server.endpoint)


def test_push_folder_offline(hub_server, monkeypatch, tmp_path):
    server = hub_server({})
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="me/m"):
        push_folder(_folder(tmp_path), "me/m")
    assert server.requests == []


def test_push_folder_not_a_directory(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        push_folder(tmp_path / "missing", "me/m")
