"""Rules and architectures from installed packages: real packages built with pip, found through their entry points in
a fresh interpreter; broken or clashing plugins are skipped with one line each and never break ``import zoo``."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from plugin_sources import TINYNET_ARCH, scaled_rule

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
