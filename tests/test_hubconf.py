"""hubconf.py through torch.hub itself (source="local"), as a user calls it."""
from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest
import torch

import zoo
from zoo.errors import UnknownModelError
from zoo.registry import families
from zoo.weights.paths import REPO_ROOT

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


def test_dependencies_list_every_package_importing_hubconf_needs() -> None:
    """torch.hub checks ``dependencies`` before importing hubconf.py: every third-party package the import pulls in
    must be listed (measured in a fresh interpreter)."""
    import subprocess
    import sys

    probe = ("import sys, torch; before = set(sys.modules); import hubconf; "
             "names = {m.split('.')[0] for m in set(sys.modules) - before}; "
             "print(' '.join(sorted(n for n in names if n not in sys.stdlib_module_names)))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    beyond_torch = {n for n in result.stdout.split() if not n.startswith("_")} - {"hubconf", "zoo"}
    assert "torch" in hubconf().dependencies
    assert beyond_torch <= set(hubconf().dependencies), f"importing hubconf.py also needs {beyond_torch}"


def test_pretrained_keyword_maps_to_weights_with_a_future_warning(tiny_zoo) -> None:
    x = torch.rand(3, 1, 28, 28)
    with pytest.warns(FutureWarning, match="weights='DEFAULT'"):
        model = torch.hub.load(REPO, "bp_mlp", pretrained=True, source="local")
    assert torch.equal(model(x), zoo.load("bp_mlp.mnist")(x))
    with pytest.warns(FutureWarning, match="weights=None"):
        untrained = torch.hub.load(REPO, "bp_mlp", pretrained=False, dataset="mnist", source="local")
    assert not torch.equal(untrained.eval()(x), model(x))


def test_help_lists_weights_indented_under_available() -> None:
    lines = hubconf().bp_mlp.__doc__.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "Available:")
    indent = len(lines[at]) - len(lines[at].lstrip())
    listed = lines[at + 1]
    assert len(listed) - len(listed.lstrip()) > indent and listed.strip().startswith("'")


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


def test_a_one_dataset_family_defaults_to_its_dataset() -> None:
    """``bp_cnn`` is trained on CIFAR-10 only: its default weights are that checkpoint (the published manifest's),
    not a missing ``bp_cnn.mnist``; families trained on MNIST keep MNIST as their default."""
    assert families()["bp_cnn"].datasets == ("cifar10",)
    model = torch.hub.load(REPO, "bp_cnn", source="local")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model(x), zoo.load("bp_cnn.cifar10")(x))
    assert "\"DEFAULT\" ('cifar10')" in hubconf().bp_cnn.__doc__
    assert "\"DEFAULT\" ('mnist')" in hubconf().bp_mlp.__doc__
    assert all(f.default_dataset in f.datasets for f in families().values())
