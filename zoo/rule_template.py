"""``python -m zoo new-rule NAME DIR``: a plugin package to start a learning rule of one's own from.

The package is complete and installable: a rule module whose ``RULES`` the zoo discovers through the
``bioplausible_zoo.rules`` entry point (it trains the MLP and the LeNet with plain layers, i.e. backprop, until its
layers are replaced by the rule's own), a recipe for ``python -m training.train ... --recipe``, a test that runs the
zoo's contract (:mod:`zoo.contract`) on its families, and ``pyproject.toml``.
"""
from __future__ import annotations

import json
import keyword
import re
from pathlib import Path

from zoo.registry import rules

NAME = re.compile(r"^[a-z][a-z0-9]*$")
ARCHITECTURES = ("mlp", "lenet")

RULE_MODULE = '''"""{name}: a learning rule for bioplausible-zoo.

Describe the rule here: what its backward pass (or local update) computes, the state it keeps (a tensor that is a
parameter or a persistent buffer is saved in the checkpoint), and the paper. The layers below are plain layers, so
until they are replaced the families train with backprop. zoo/rules/kolen_pollack.py is a complete rule written
against the same API: layers with a custom autograd backward pass, a trainer, and the RULES declaration.
"""
from __future__ import annotations

from zoo.archs.base import LayerKit, plain_conv, plain_linear
from zoo.engine.trainer import GradientTrainer
from zoo.rules.base import Rule


def layers(num_classes: int) -> LayerKit:
    """The fully connected and convolution layers every architecture of the rule is built from."""
    return LayerKit(linear=plain_linear, conv=plain_conv)


RULES = (
    Rule(name="{name}", learning_rule="{name}", description="trained with {name}.", trainer=GradientTrainer,
         layers=layers, architectures={architectures}),
)
'''

TEST_MODULE = '''"""The zoo's contract on the rule's families: build, one training step, checkpoint round trip,
resume and determinism."""
import pytest

from zoo.contract import check_family


@pytest.mark.parametrize("family", {families})
def test_family_keeps_the_zoo_contract(family: str) -> None:
    failed = [f"{{r.name}}: {{r.detail}}" for r in check_family(family) if not r.passed]
    assert not failed, failed
'''

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "zoo-{name}"
version = "0.1.0"
description = "The {name} learning rule as a bioplausible-zoo plugin"
requires-python = ">=3.11"
dependencies = ["bioplausible-zoo", "torch>=2.3"]

[project.entry-points."bioplausible_zoo.rules"]
{name} = "zoo_{name}"

[tool.setuptools]
py-modules = ["zoo_{name}"]
'''

README = '''# zoo-{name}

The `{name}` learning rule as a bioplausible-zoo plugin.

```bash
pip install -e .                                   # the zoo discovers it: python -m zoo list --all
python -m zoo check-rule {name}_mlp                # the zoo's contract
pytest tests                                       # the same, as a test
python -m zoo benchmark {name}_lenet --dataset mnist --out bench --recipe recipes/{name}_lenet.json
```
'''


def check_name(name: str) -> None:
    """Refuse a rule name that cannot prefix family names or is taken, naming what is accepted."""
    if not NAME.match(name) or keyword.iskeyword(name):
        raise ValueError(f"rule name {name!r} must be lowercase letters and digits, starting with a letter "
                         "(it prefixes the family names, e.g. NAME_mlp)")
    if name in rules():
        raise ValueError(f"rule name {name!r} is taken by the zoo or an installed plugin; taken: {sorted(rules())}")


def write_rule_package(name: str, folder: Path) -> list[Path]:
    """Write the plugin package of rule ``name`` into ``folder`` (new or empty); return the files written."""
    check_name(name)
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{folder} is not empty; give a new or empty folder")
    families = [f"{name}_{a}" for a in ARCHITECTURES]
    recipe = {"entrypoint": f"{name}_lenet", "selected_on": "none",
              "notes": "A starting point: the zoo's LeNet MNIST schedule. Choose yours on --val runs.",
              "defaults": {"fit": {"epochs": 12, "augment": "shift"}}, "datasets": {"mnist": {}}}
    files = {
        f"zoo_{name}.py": RULE_MODULE.format(name=name, architectures=f"({', '.join(map(json.dumps, ARCHITECTURES))})"),
        "tests/test_contract.py": TEST_MODULE.format(families=json.dumps(families)),
        f"recipes/{name}_lenet.json": json.dumps(recipe, indent=2) + "\n",
        "pyproject.toml": PYPROJECT.format(name=name),
        "README.md": README.format(name=name),
    }
    written = []
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
