"""Rules and architectures from installed packages: real packages built with pip, found through their entry points in
a fresh interpreter; broken or clashing plugins are skipped with one line each and never break ``import zoo``."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from plugin_sources import TINYNET_ARCH, scaled_rule

from training.arithmetic import CHOICE, PORTABLE
from zoo.weights.paths import REPO_ROOT

CLASHING_RULE = '''
from zoo.engine.trainer import GradientTrainer
from zoo.rules.base import Rule
RULES = (Rule(name="bp", learning_rule="other_backprop", description="x.", trainer=GradientTrainer),)
'''


def install(package: str, modules: dict[str, str], entry_points: dict[str, dict[str, str]], site: Path,
            tmp_path: Path) -> None:
    """Build ``package`` (one module per entry of ``modules``) with pip and install it into ``site``."""
    source = tmp_path / "src" / package
    source.mkdir(parents=True)
    groups = "".join(f'\n[project.entry-points."{group}"]\n' + "".join(f'{k} = "{v}"\n' for k, v in points.items())
                     for group, points in entry_points.items())
    (source / "pyproject.toml").write_text(textwrap.dedent(f'''
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{package}"
        version = "0.1"

        [tool.setuptools]
        py-modules = {sorted(modules)!r}
    ''').replace("'", '"') + groups)
    for name, code in modules.items():
        (source / f"{name}.py").write_text(code)
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "--target",
                    str(site), str(source)], check=True, capture_output=True, text=True, timeout=300)


def zoo_in(site: Path, code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter that sees the installed plugins and this checkout's zoo."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO_ROOT)])}
    return subprocess.run([sys.executable, "-c", code], cwd=site, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("plugins")
    site = tmp_path / "site"
    install("zoo-scaled-plugin", {"zoo_scaled": scaled_rule(("mlp", "tinynet")), "zoo_tinynet": TINYNET_ARCH},
            {"bioplausible_zoo.rules": {"scaled": "zoo_scaled"}, "bioplausible_zoo.archs": {"tinynet": "zoo_tinynet"}},
            site, tmp_path)
    install("zoo-broken-plugin", {"zoo_broken": "raise ImportError('needs a package that is not installed')\n",
                                  "zoo_clash": CLASHING_RULE, "zoo_wrong": "RULES = 3\n"},
            {"bioplausible_zoo.rules": {"broken": "zoo_broken", "clash": "zoo_clash", "wrong": "zoo_wrong"}},
            site, tmp_path)
    return site


def test_plugin_rules_and_architectures_generate_families_with_the_built_in_ones(site: Path) -> None:
    result = zoo_in(site, textwrap.dedent('''
        import torch
        from zoo.registry import families
        f = families()
        print(sorted(n for n in f if n.startswith("scaled_") or n.endswith("_tinynet")))
        print(f["scaled_mlp"].plugin)
        model = f["scaled_tinynet"].build_model(f["scaled_tinynet"].arch_for("mnist", width=3, scale=0.0))
        print(float(model.head.weight.abs().sum()), tuple(model(torch.rand(2, 1, 28, 28)).shape))
        print(f["bp_mlp"].plugin, f["bp_mlp"].learning_rule)
    '''))
    assert result.returncode == 0, result.stderr
    names, origin, built, built_in = result.stdout.splitlines()
    assert {"scaled_mlp", "scaled_tinynet", "bp_tinynet", "fa_tinynet", "dfa_tinynet"} <= set(eval(names))
    assert "scaled_lenet" not in names  # the plugin rule names the architectures it trains
    assert origin == "plugin scaled (zoo_scaled, from zoo-scaled-plugin)"
    assert built == "0.0 (2, 10)"  # the plugin rule's option reached its layers in the plugin architecture
    assert built_in == "None backprop"  # the clashing plugin did not replace the built-in rule


def test_broken_clashing_and_wrong_plugins_are_skipped_with_one_line_each(site: Path) -> None:
    result = zoo_in(site, "import zoo; from zoo.registry import families; families(); print(len(zoo.list_models()))")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    broken, clash, wrong = sorted(lines)
    assert broken.startswith("bioplausible-zoo: plugin broken (zoo_broken, from zoo-broken-plugin) skipped: "
                             "importing it failed: ImportError: needs a package that is not installed")
    assert clash == "bioplausible-zoo: plugin clash (zoo_clash, from zoo-broken-plugin) skipped: rule 'bp' is taken " \
                    "by the zoo"
    assert "plugin wrong (zoo_wrong" in wrong and "not a RULES tuple" in wrong
    import zoo

    assert int(result.stdout) == len(zoo.list_models())


def test_zoo_list_all_shows_plugin_families_with_their_plugin(site: Path) -> None:
    result = zoo_in(site, "from zoo.cli import main; main(['list', '--all'])")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "no weights" in rows["scaled_mlp"] and rows["scaled_mlp"].endswith("from zoo-scaled-plugin)")
    assert "bp_tinynet" in rows and "published" in rows["bp_mlp.mnist"]


EXAMPLE = REPO_ROOT / "examples" / "kolen_pollack"


def zoo_before_kolen_pollack(root: Path) -> Path:
    """A copy of the checkout's code as it was before the zoo adopted the Kolen-Pollack plugin: no built-in ``kp``
    rule, recipes or manifest entries (the published weights are linked, not copied)."""
    shutil.copytree(REPO_ROOT / "zoo", root / "zoo", ignore=shutil.ignore_patterns("__pycache__", "kolen_pollack.py"))
    shutil.copytree(REPO_ROOT / "training", root / "training",
                    ignore=shutil.ignore_patterns("__pycache__", "in_progress", "kp_*.json"))
    document = json.loads((REPO_ROOT / "weights_manifest.json").read_text())
    document["weights"] = [e for e in document["weights"] if not e["entrypoint"].startswith("kp_")]
    (root / "weights_manifest.json").write_text(json.dumps(document))
    (root / "weights").symlink_to(REPO_ROOT / "weights")
    return root


def test_the_kolen_pollack_plugin_is_the_built_in_module_itself() -> None:
    assert (EXAMPLE / "zoo_kolen_pollack.py").resolve() == REPO_ROOT / "zoo" / "rules" / "kolen_pollack.py"
    for recipe in (EXAMPLE / "recipes").iterdir():
        assert recipe.resolve() == REPO_ROOT / "training" / "recipes" / recipe.name


def test_the_kolen_pollack_plugin_installs_trains_and_is_benchmarked_beside_the_zoo(tmp_path: Path,
                                                                                      data_root: Path) -> None:
    """Built and installed with pip into a fresh site folder, next to the zoo as it was before it adopted the rule:
    discovered, listed, trained for an epoch on real MNIST images and reported beside bp_lenet.mnist."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "--target",
                    str(site), str(EXAMPLE)], check=True, capture_output=True, text=True, timeout=300)
    assert (site / "zoo_kolen_pollack.py").read_bytes() == (REPO_ROOT / "zoo/rules/kolen_pollack.py").read_bytes()
    before = zoo_before_kolen_pollack(tmp_path / "zoo_before")
    env = {key: value for key, value in os.environ.items() if key not in {"ZOO_MANIFEST", CHOICE, *PORTABLE}}
    env.update(PYTHONPATH=os.pathsep.join([str(site), str(before)]), OMP_NUM_THREADS="1")

    def zoo_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "zoo", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)

    listed = zoo_cli("list", "--all")
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert rows["kp_lenet"].endswith("plugin kp (zoo_kolen_pollack, from zoo-kolen-pollack)")
    assert "kp_lenet.mnist" not in rows and "bp_lenet.mnist" in rows
    out = tmp_path / "bench"
    done = zoo_cli("benchmark", "kp_lenet", "--dataset", "mnist", "--out", str(out), "--recipe",
                   str(EXAMPLE / "recipes" / "kp_lenet.json"), "--epochs", "1", "--limit", "6000", "--val", "1000",
                   "--test-limit", "2000", "--attack-images", "50", "--data-root", str(data_root))
    assert done.returncode == 0, done.stderr
    run = json.loads((out / "seed-0" / "entry.json").read_text())
    assert run["learning_rule"] == "kolen_pollack" and run["metrics"]["top1"] > 80  # 6,000 images once: 87 % measured
    assert run["recipe"]["cpu"]["arithmetic"] == "portable"  # the engine's default, though `zoo` started torch first
    assert set(run["metrics"]["feedback_angle_deg"]) == {"conv1.weight", "conv2.weight", "fc.weight", "head.weight"}
    assert run["metrics"]["robustness"]["transfer_source"] == "bp_lenet.mnist"
    report = (out / "report.md").read_text()
    assert "plugin kp (zoo_kolen_pollack, from zoo-kolen-pollack)" in report
    assert "| **`seed-0`** (kp_lenet) |" in report and "| `bp_lenet.mnist` |" in report
    header, row = (out / "results.csv").read_text().splitlines()
    assert header.startswith("id,family,rule,learning_rule,architecture,dataset,top1")
    assert row.startswith("kp_lenet.mnist,kp_lenet,kp,kolen_pollack,lenet,mnist,")


def test_the_plugin_beside_the_zoo_that_adopted_it_is_skipped_with_one_line(tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "--target",
                    str(site), str(EXAMPLE)], check=True, capture_output=True, text=True, timeout=300)
    result = zoo_in(site, "from zoo.registry import families; print(families()['kp_lenet'].plugin)")
    assert result.returncode == 0 and result.stdout.strip() == "None"
    assert result.stderr == ("bioplausible-zoo: plugin kp (zoo_kolen_pollack, from zoo-kolen-pollack) skipped: "
                             "rule 'kp' is taken by the zoo\n")
