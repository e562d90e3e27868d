"""Shared pytest fixtures: per-test cache isolation and loopback HTTP servers (see servers.py)."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_TESTS = Path(__file__).resolve().parent
for _p in (str(_TESTS.parent), str(_TESTS)):  # `import zoo` and `from servers import ...`
    if _p not in sys.path:
        sys.path.insert(0, _p)

from datasets import MISSING_PREFIX, default_root, root_with  # noqa: E402
from servers import FileServer, HubServer  # noqa: E402

import training  # noqa: E402,F401  sets the engine's arithmetic before torch starts, as every training command does

if "ZOO_DATA_ROOT" not in os.environ and default_root() is not None:
    os.environ["ZOO_DATA_ROOT"] = str(default_root())  # the code under test reads it too

# Variables that would let a test reach (or be steered by) the outside world or the developer's
# own configuration. Tests set the ones they need with monkeypatch.
_CLEARED_ENV = (
    "ZOO_OFFLINE",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "ZOO_WEIGHTS_URL",
    "HF_ENDPOINT",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HUGGINGFACE_HUB_CACHE",
)


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every cache at a fresh temp folder and clear offline/endpoint variables.

    Sets TORCH_HOME, HF_HOME, HF_HUB_CACHE and XDG_CACHE_HOME under one temp folder (returned),
    unsets the variables in ``_CLEARED_ENV``, keeps loopback traffic off any proxy, and turns
    off Hub telemetry.
    """
    root = tmp_path_factory.mktemp("caches")
    monkeypatch.setenv("TORCH_HOME", str(root / "torch"))
    monkeypatch.setenv("HF_HOME", str(root / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(root / "hf" / "hub"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "xdg"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    for var in _CLEARED_ENV:
        monkeypatch.delenv(var, raising=False)
    for var in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(var, "")
        monkeypatch.setenv(var, ",".join(filter(None, [current, "127.0.0.1", "localhost"])))
    return root


@pytest.fixture
def file_server() -> Iterator[Callable[..., FileServer]]:
    """Factory: ``file_server({path: bytes}, slow_delay=0.05)`` starts a FileServer, stopped at teardown."""
    started: list[FileServer] = []

    def start(files: dict[str, bytes], **kwargs: object) -> FileServer:
        server = FileServer(files, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def hub_server() -> Iterator[Callable[..., HubServer]]:
    """Factory: ``hub_server({repo_id: {filename: bytes}}, revision_sha=..., token=None)`` starts a
    HubServer, stopped at teardown. Point the client at it with ``HF_ENDPOINT=server.endpoint``."""
    started: list[HubServer] = []

    def start(repos: dict[str, dict[str, bytes]], **kwargs: object) -> HubServer:
        server = HubServer(repos, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@dataclass(frozen=True)
class TinyZoo:
    """A manifest of its own (``ZOO_MANIFEST``) with one small published ``bp_mlp.mnist`` checkpoint."""

    root: Path
    manifest: Path
    model_id: str
    checkpoint: Path
    sha256: str
    model: Any


@pytest.fixture(scope="session")
def _tiny_model() -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """An untrained 8-8 ``bp_mlp`` with its arch and metrics measured on the bundled MNIST test split
    (computed once per session: the same model is published anew for each test)."""
    import torch

    from zoo.data import load_split
    from zoo.evaluation.evaluate import full_metrics
    from zoo.registry import get_family

    torch.manual_seed(0)
    family = get_family("bp_mlp")
    arch = family.arch_for("mnist", hidden=[8, 8])
    model = family.build_model(arch).eval()
    return model, arch, full_metrics(model, *load_split("mnist", "test"), "mnist")


@pytest.fixture
def tiny_zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _tiny_model: tuple[Any, dict[str, Any],
             dict[str, Any]]) -> TinyZoo:
    """Publish the tiny model through the real training code path into a temp manifest and point the zoo at it."""
    from publishing import publish_test_model

    model, arch, metrics = _tiny_model
    entry = publish_test_model(tmp_path, monkeypatch, "bp_mlp", "mnist", arch, model, metrics)
    manifest = tmp_path / "zoo" / "weights_manifest.json"
    return TinyZoo(manifest.parent, manifest, entry.id, manifest.parent / entry.file, entry.sha256, model)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for tests of small tensors: on a busy machine extra threads only add synchronisation
    stalls."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def data_root() -> Path:
    """The real MNIST and Fashion-MNIST (see tests/datasets.py); skipped without them, a failure under CI=true."""
    return root_with("mnist", "fashion_mnist")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line counting the tests skipped for a missing dataset, and how to run them."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if MISSING_PREFIX in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(f"{len(skipped)} tests skipped because a dataset is missing: set ZOO_DATA_ROOT "
                                    "to a torchvision-layout folder (make test finds ../shared/datasets itself)")
