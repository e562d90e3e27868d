"""Model cards (the ``README.md`` of a Hub repository), generated from the manifest entry."""
from __future__ import annotations

import json

from zoo.data.catalog import DATASETS
from zoo.registry import get_family
from zoo.weights.manifest import Entry


def _front_matter(entry: Entry) -> str:
    top1 = entry.metrics["top1"]
    lines = [
        "---",
        "library_name: bioplausible-zoo",
        f"license: {entry.license.lower()}",
        "datasets:",
        f"- {DATASETS[entry.dataset].hf_dataset}",
        "tags:",
        "- image-classification",
        "- biologically-plausible-learning",
        f"- {entry.learning_rule}",
        f"- {entry.entrypoint}",
        "model-index:",
        f"- name: {entry.id}",
        "  results:",
        "  - task:",
        "      type: image-classification",
        "    dataset:",
        f"      name: {DATASETS[entry.dataset].title}",
        f"      type: {DATASETS[entry.dataset].hf_dataset}",
        "      split: test",
        "    metrics:",
        "    - type: accuracy",
        f"      value: {top1}",
        "      name: top-1 accuracy (%)",
        "---",
    ]
    return "\n".join(lines)


def render_model_card(entry: Entry) -> str:
    """Markdown model card with YAML front matter (library, license, datasets, tags, metrics)."""
    family = get_family(entry.entrypoint)
    metrics = entry.metrics
    noise = ", ".join(f"σ={k}: {v:.2f}%" for k, v in metrics["top1_noise"].items())
    fgsm = ", ".join(f"ε={k}: {v:.2f}%" for k, v in metrics.get("top1_fgsm", {}).items()) or "n/a"
    recipe = entry.recipe
    shape = ", ".join(map(str, entry.input["shape"]))
    body = f"""
# {entry.id}

{family.summary}

- **Learning rule:** `{entry.learning_rule}`{f" ({family.paper})" if family.paper else ""}
- **Dataset:** {DATASETS[entry.dataset].title} (input float `[N, {shape}]` in [0, 1];
  the model normalises internally)
- **Parameters:** {entry.num_params:,} — checkpoint {entry.size_bytes:,} bytes, sha256 `{entry.sha256}`

## Architecture
```json
{json.dumps(entry.arch, indent=2)}
```

## Results (full official test split, n={metrics["n_eval"]})
| metric | value |
|---|---|
| top-1 | {metrics["top1"]:.2f}% |
| top-1 under Gaussian noise | {noise} |
| top-1 under FGSM | {fgsm} |

## Recipe
Reproduce with `{recipe["command"]}` (seed {recipe["seed"]}, {recipe["epochs"]} epochs, {recipe["wall_time_s"]:.0f} s
on {recipe["hardware"]}, torch {recipe["torch_version"]}, commit `{recipe["git_commit"]}`).
```json
{json.dumps(recipe["config"], indent=2)}
```

## Use
```python
import torch
model = torch.hub.load("bioplausible-zoo/bioplausible-zoo", "{entry.entrypoint}", weights="{entry.dataset}")
# or: import zoo; model = zoo.load("{entry.id}", source="hf")
```
"""
    return _front_matter(entry) + "\n" + body
