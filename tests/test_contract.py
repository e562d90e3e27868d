"""``zoo check-rule`` and ``zoo new-rule``: the contract passes on every family of the zoo, names what a broken rule
breaks, and the template package installs, is discovered and passes its own contract test."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import zoo.rules
from zoo import registry
from zoo.cli import main as cli
from zoo.contract import check_family
from zoo.registry import families
from zoo.weights.paths import REPO_ROOT


@pytest.mark.parametrize("name", sorted(families()))
def test_every_zoo_family_keeps_the_contract(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Hebbian trainers warn that so few epochs leave their head untrained
        failed = [f"{r.name}: {r.detail}" for r in check_family(name) if not r.passed]
    assert not failed, failed


BROKEN_RULE = '''
import random
import torch
from torch import nn
from zoo.archs.base import LayerKit, plain_conv
from zoo.engine.trainer import GradientTrainer
from zoo.rules.base import Rule

class Jittery(nn.Linear):
    """Adds noise from Python's own unseeded generator, and keeps a scale outside its state."""
    def __init__(self, a, b):
        super().__init__(a, b)
        self.scale = 1.0
    def forward(self, x):
        if self.training:
            self.scale *= 1.0 + random.random()
        return super().forward(x) * self.scale

RULES = (Rule(name="jittery", learning_rule="jittery", description="x.", trainer=GradientTrainer,
              layers=lambda num_classes: LayerKit(linear=Jittery, conv=plain_conv), architectures=("mlp",)),)
'''


def test_a_broken_rule_fails_the_checks_it_breaks_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "jittery.py").write_text(BROKEN_RULE)
    monkeypatch.setattr(zoo.rules, "__path__", [*zoo.rules.__path__, str(tmp_path)])
    registry.rediscover()
    try:
        assert cli(["check-rule", "jittery_mlp"]) == 1
    finally:
        monkeypatch.undo()
        sys.modules.pop("zoo.rules.jittery", None)
        registry.rediscover()
    out = capsys.readouterr().out
    assert "  ok    builds and returns logits" in out and "  ok    one step trains" in out
    assert "  FAIL  resume: AssertionError: after resuming, tensors" in out
    assert "  FAIL  determinism: AssertionError: two runs with the same seed differ in" in out
    assert "3 of 5 checks passed" in out


def test_new_rule_writes_a_package_that_installs_and_passes_its_own_contract_test(tmp_path: Path) -> None:
    package = tmp_path / "zoo-myrule"
    assert cli(["new-rule", "myrule", str(package)]) == 0
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "--target",
                    str(site), str(package)], check=True, capture_output=True, text=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO_ROOT)]), "OMP_NUM_THREADS": "1"}
    checked = subprocess.run([sys.executable, "-m", "zoo", "check-rule", "myrule_lenet"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0 and "5 of 5 checks passed" in checked.stdout, checked.stdout + checked.stderr
    own_test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests")],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert own_test.returncode == 0 and "2 passed" in own_test.stdout, own_test.stdout + own_test.stderr


@pytest.mark.parametrize("name, message", [
    ("2fast", "must be lowercase letters and digits"), ("My_Rule", "must be lowercase letters and digits"),
    ("fa", "is taken by the zoo or an installed plugin"),
])
def test_new_rule_refuses_names_that_cannot_make_families(name: str, message: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["new-rule", name, str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_new_rule_refuses_a_folder_with_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert cli(["new-rule", "myrule", str(tmp_path)]) == 2
    assert "is not empty" in capsys.readouterr().err and os.listdir(tmp_path) == ["keep.txt"]
