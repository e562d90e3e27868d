"""The engine's arithmetic (:mod:`training.arithmetic`): portable unless ``ZOO_ARITHMETIC=native``, set before
torch starts, recorded by every run, kept by a resume and given back to a re-run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.arithmetic import CHOICE, PORTABLE, environment, in_effect
from training.command import UsageError
from training.provenance import REPO_ROOT
from training.reproduce import rerun_environment
from training.train import resumed_run
from zoo.weights.manifest import Entry

CAPABILITY = "import torch; print(torch.backends.cpu.get_cpu_capability())"


def python(code: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    return done.stdout.strip()


def clean() -> dict[str, str]:
    """This environment without any arithmetic variable, as a fresh shell has it."""
    return {k: v for k, v in os.environ.items() if k not in PORTABLE and k != CHOICE}


@pytest.fixture(scope="module")
def native_isa() -> str:
    isa = python(CAPABILITY, clean())
    if isa == "DEFAULT":
        pytest.skip("this CPU has no AVX2, which the portable arithmetic needs")
    return isa


def train_cpu_record(tmp_path: Path, data_root: Path, **variables: str) -> dict[str, str]:
    out = tmp_path / "_".join(f"{k}-{v}" for k, v in variables.items()) or tmp_path / "default"
    subprocess.run([sys.executable, "-m", "training.train", "bp_mlp", "--dataset", "mnist", "--epochs", "1",
                    "--limit", "300", "--test-limit", "100", "--set", "arch.hidden=[16]", "--no-progress",
                    "--data-root", str(data_root), "--out", str(out)], cwd=REPO_ROOT,
                   env={**clean(), **variables}, capture_output=True, text=True, timeout=300, check=True)
    return dict(json.loads((out / "entry.json").read_text())["recipe"]["cpu"])


def test_a_run_is_portable_by_default_and_records_the_arithmetic_it_used(tmp_path: Path, data_root: Path,
                                                                          native_isa: str) -> None:
    portable = train_cpu_record(tmp_path, data_root)
    assert (portable["arithmetic"], portable["isa"]) == ("portable", "AVX2")  # ATen capped, whatever the CPU has
    native = train_cpu_record(tmp_path, data_root, ZOO_ARITHMETIC="native")
    assert (native["arithmetic"], native["isa"]) == ("native", native_isa)


def test_the_variables_are_set_only_before_torch_starts(native_isa: str) -> None:
    report = "import os; print(os.environ.get('MKL_CBWR'), torch.backends.cpu.get_cpu_capability())"
    assert python(f"import training, torch; {report}", clean()) == "AVX2,STRICT AVX2"
    # torch first: too late to change what its libraries read, so nothing is set and a run would record "native"
    assert python(f"import torch, training; {report}; print(training.arithmetic.in_effect())",
                  clean()).split() == ["None", native_isa, "native"]


def test_an_unknown_arithmetic_is_refused_naming_the_accepted_ones() -> None:
    done = subprocess.run([sys.executable, "-m", "training.train", "bp_mlp", "--dataset", "mnist"], cwd=REPO_ROOT,
                          env={**clean(), CHOICE: "fast"}, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "ZOO_ARITHMETIC='fast' is not an arithmetic the engine knows; accepted: portable, native" in done.stderr


def test_in_effect_names_what_the_environment_holds() -> None:
    assert in_effect(dict(PORTABLE)) == "portable" and in_effect({}) == "native"
    assert in_effect({"ATEN_CPU_CAPABILITY": "default"}) == "custom (ATEN_CPU_CAPABILITY=default)"
    assert environment("native", {**PORTABLE, "HOME": "/h"}) == {"HOME": "/h", CHOICE: "native"}
    assert environment("portable", {"HOME": "/h"}) == {"HOME": "/h", CHOICE: "portable", **PORTABLE}


def test_a_resume_keeps_the_arithmetic_the_run_started_with(tmp_path: Path) -> None:
    """A run started before runs recorded their arithmetic used the native one: it resumes only with that."""
    now = {"command": "python -m training.train bp_mlp --dataset mnist", "config": {"fit": {}},
           "git_commit": "abc", "cpu": {"model": "M", "isa": "AVX2", "arithmetic": "portable"}, "threads": 1,
           "device": "cpu", "processes": 1}
    saved = {**now, "cpu": {"model": "M", "isa": "AVX2"}}
    (tmp_path / "run.json").write_text(json.dumps(saved))
    with pytest.raises(UsageError, match="started with the native arithmetic, this process has portable; resume "
                                         "it with ZOO_ARITHMETIC=native"):
        resumed_run(tmp_path, now)
    (tmp_path / "run.json").write_text(json.dumps({**saved, "cpu": now["cpu"]}))
    assert resumed_run(tmp_path, now)[0]["cpu"] == now["cpu"]


def test_a_rerun_gets_the_arithmetic_its_entry_records(tmp_path: Path) -> None:
    from zoo.api import get_entry

    entry = get_entry("bp_mlp.mnist").to_dict()
    for cpu, expected in (({"model": "M", "isa": "AVX2", "arithmetic": "portable"}, PORTABLE),
                          ({"model": "M", "isa": "AVX512"}, {})):
        env = rerun_environment(Entry.from_dict({**entry, "recipe": {**entry["recipe"], "cpu": cpu}}), "1", tmp_path)
        assert {k: env[k] for k in PORTABLE if k in env} == expected
        assert env["OMP_NUM_THREADS"] == "1" and env["PYTHONPATH"] == str(tmp_path) and "ZOO_MANIFEST" not in env
