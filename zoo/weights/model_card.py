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


def _pictures(pictures: dict[str, str]) -> str:
    return "".join(f"\n![{caption}]({name})\n" for name, caption in pictures.items())


def _attack_section(entry: Entry) -> str:
    block = entry.metrics.get("robustness")
    if block is None:
        return ""
    lines = [f"\n## Adversarial attacks (first {block['n_eval']:,} test images, clean {block['top1_clean']:.2f}%)",
             "White-box: the true input gradient; rule gradient: the gradient the learning rule propagates; "
             f"transfer: crafted on `{block['transfer_source']}`. PGD: {block['pgd']['steps']} steps, random start.",
             "", "| attack | attack model | " + " | ".join(f"ε={k}" for k in block["top1_pgd"]["white_box"]) + " |",
             "|---|---|" + "---|" * len(block["top1_pgd"]["white_box"])]
    for attack in ("fgsm", "pgd"):
        for model, curve in block[f"top1_{attack}"].items():
            lines.append(f"| {attack.upper()} | {model} | " + " | ".join(f"{v:.1f}%" for v in curve.values()) + " |")
    return "\n".join(lines) + "\n"


def _curve_section(entry: Entry) -> str:
    records = entry.recipe.get("curve")
    if not records:
        return ""
    lines = ["\n## Learning curve (the training run's own record)", "| epoch | training loss | test top-1 |",
             "|---|---|---|"]
    lines += [f"| {r['epoch']} | {r['train_loss']:.4f} | "
              + (f"{r['test_top1']:.2f}%" if r.get("test_top1") is not None else "—") + " |" for r in records]
    return "\n".join(lines) + "\n"


def _alignment_section(entry: Entry) -> str:
    from zoo.evaluation.alignment import ANGLE_METRICS

    return "".join(f"\n## {title[0].upper()}{title[1:]}\n| layer | angle |\n|---|---|\n"
                   + "".join(f"| `{k}` | {v:.1f} |\n" for k, v in entry.metrics[key].items())
                   for key, title in ANGLE_METRICS.items() if entry.metrics.get(key))


def render_model_card(entry: Entry, pictures: dict[str, str] | None = None) -> str:
    """Markdown model card with YAML front matter (library, license, datasets, tags, metrics), the checkpoint's
    recorded figures (robustness, attack comparison, alignment angles, learning curve) as tables, and the
    ``pictures`` (``{file name in the folder: caption}``) drawn beside it."""
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
{_attack_section(entry)}{_alignment_section(entry)}{_curve_section(entry)}{_pictures(pictures or {})}
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
