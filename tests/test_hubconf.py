"""hubconf.py through torch.hub itself (source="local"), as a user calls it."""
from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest
import torch

import zoo
from zoo.errors import UnknownModelError
from zoo.paths import REPO_ROOT
from zoo.registry import families

REPO = str(REPO_ROOT)


def hubconf() -> ModuleType:
    """hubconf.py imported from its file, as torch.hub imports it."""
    spec = importlib.util.spec_from_file_location("hubconf", REPO_ROOT / "hubconf.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_entrypoints_are_exactly_the_families() -> None:
    module = hubconf()
    # torch.hub.list's rule (it only reads GitHub repos): public callables of hubconf.py
    entrypoints = [name for name in dir(module) if callable(getattr(module, name)) and not name.startswith("_")]
    assert sorted(entrypoints) == sorted(families())
    assert module.dependencies == ["torch", "safetensors"]


@pytest.mark.parametrize("name", sorted(families()))
def test_every_entrypoint_documents_itself(name: str) -> None:
    doc = getattr(hubconf(), name).__doc__  # what torch.hub.help returns
    assert "Learning rule:" in doc and "weights:" in doc and "Returns:" in doc
    assert families()[name].summary in doc


def test_hub_load_with_weights_matches_zoo_load(tiny_zoo) -> None:
    model = torch.hub.load(REPO, "bp_mlp", weights="mnist", source="local")
    assert not model.training
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(model(x), zoo.load("bp_mlp.mnist")(x))
    default = torch.hub.load(REPO, "bp_mlp", source="local")
    assert torch.equal(default(x), model(x))


def test_hub_load_untrained_and_pending(tiny_zoo) -> None:
    model = torch.hub.load(REPO, "bp_mlp", weights=None, dataset="fashion_mnist", hidden=[32, 16], source="local")
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(UnknownModelError, match="bp_mlp.cifar10|Did you mean|Known"):
        torch.hub.load(REPO, "bp_mlp", weights="cifar10", source="local")
