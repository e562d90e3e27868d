"""Regenerate README.md's generated tables (``python -m training.readme_table``): the results table and the attack
comparison from the weights manifest, the learning-rule table from the registry, the Krotov width table from
``results/krotov_width.json`` (written by ``benchmarks/krotov_width.py``) and the legacy retrains from
``results/legacy_retrains.json`` (written by ``training.retrain``).

``--check`` exits non-zero if README.md is out of date instead of rewriting it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from training import retrain
from training.report import attack_table
from training.seed_spread import read_record, spread_text
from training.targets import TARGETS
from zoo.data.catalog import DATASETS
from zoo.evaluation.metric_grid import NOISE_SIGMAS, fgsm_epsilons
from zoo.registry import families, rules
from zoo.weights.manifest import Manifest, read_manifest
from zoo.weights.paths import REPO_ROOT, manifest_path

RESULTS = ("<!-- results:start -->", "<!-- results:end -->")
RULES = ("<!-- rules:start -->", "<!-- rules:end -->")
ATTACKS = ("<!-- attacks:start -->", "<!-- attacks:end -->")
ATTACK_DATASETS = ("mnist", "cifar10")
SEED_QUESTION = ("<!-- seed-question:start -->", "<!-- seed-question:end -->")
# backprop, feedback-driven (equilibrium propagation, deep feedback control), Hebbian
SEED_MODELS = ("bp_mlp.mnist", "ep_mlp.mnist", "dfc_mlp.mnist", "krotov_mlp.mnist")
FINE_TUNED_MARK = "†"
TARGETS_BLOCK = ("<!-- targets:start -->", "<!-- targets:end -->")
KROTOV_WIDTH = ("<!-- krotov-width:start -->", "<!-- krotov-width:end -->")
KROTOV_WIDTH_RESULTS = REPO_ROOT / "results" / "krotov_width.json"
RETRAINS = ("<!-- legacy-retrains:start -->", "<!-- legacy-retrains:end -->")


def _cell(manifest: Manifest, model_id: str, seeds: Mapping[str, Any]) -> str:
    entry = manifest.entries.get(model_id)
    if entry is None:
        return "—"
    if not entry.published:
        return "pending"
    tuned = FINE_TUNED_MARK if entry.recipe["config"].get("init") else ""
    found = spread_text(dict(seeds), entry)
    return f"{entry.metrics['top1']:.2f}{tuned}" + (f" ({found} seeds)" if found else "")


def render_table(manifest: Manifest) -> str:
    """Markdown table: one row per family, top-1 (%) per dataset, parameter count and rule."""
    families = sorted({e.entrypoint: e.learning_rule for e in manifest.entries.values()}.items())
    header = "| model | rule | " + " | ".join(info.title for info in DATASETS.values()) + " | params |"
    lines = [header, "|" + "---|" * (len(DATASETS) + 3)]
    seeds = read_record()
    for family, rule in families:
        cells = [_cell(manifest, f"{family}.{tag}", seeds) for tag in DATASETS]
        params = {e.num_params for e in manifest.entries.values()
                  if e.entrypoint == family and e.num_params is not None}
        lines.append(f"| `{family}` | {rule} | " + " | ".join(cells) + " | "
                     + (", ".join(f"{p:,}" for p in sorted(params)) or "—") + " |")
    lines.append("")
    lines.append(f"{FINE_TUNED_MARK} fine-tuned with the same rule from the model's MNIST checkpoint (fixed feedback "
                 "matrices, "
                 "where the rule has them, stay bit-identical); the others are trained from scratch. "
                 "Where more seeds of the recipe were run (`python -m training.seed_spread`), the cell adds "
                 "mean ± sample std (count) over the published seed and those (for an older checkpoint a retrain "
                 "did not replace, over the retrain and those, so that every seed ran on today's engine): "
                 "differences between rules smaller than the spread mean nothing.")
    return "\n".join(lines)


def render_rules() -> str:
    """Markdown table: one row per learning rule with its generated families, its paper and how it learns."""
    by_rule: dict[str, list[str]] = {}
    for family in families().values():
        by_rule.setdefault(family.rule, []).append(f"`{family.name}`")
    lines = ["| rule | families | paper | how it learns |", "|---|---|---|---|"]
    for name, rule in rules().items():
        how = rule.description.removeprefix("trained with ").replace("|", "\\|")
        lines.append(f"| `{name}` | {', '.join(by_rule[name])} | {rule.paper} | {how} |")
    return "\n".join(lines)


def render_attacks(manifest: Manifest) -> str:
    """The PGD attack comparison of the report (:func:`training.report.attack_table`) for MNIST and CIFAR-10."""
    tables = []
    for dataset in ATTACK_DATASETS:
        entries = sorted((e for e in manifest.entries.values()
                          if e.dataset == dataset and e.published and "robustness" in e.metrics), key=lambda e: e.id)
        if entries:
            tables.append(f"**{DATASETS[dataset].title}.** " + attack_table(dataset, entries))
    return "\n\n".join(tables)


def render_seed_question(manifest: Manifest) -> str:
    """Clean, Gaussian-noise, FGSM and PGD top-1 on MNIST of backprop, equilibrium propagation, deep feedback control
    and Krotov's rule (those published)."""
    entries = [manifest.entries[i] for i in SEED_MODELS if i in manifest.entries and manifest.entries[i].published]
    if not entries:
        return "No checkpoint of these families is published yet."
    noise, fgsm = NOISE_SIGMAS, fgsm_epsilons("mnist")
    lines = ["| model | clean | " + " | ".join(f"noise σ={s}" for s in noise) + " | "
             + " | ".join(f"FGSM ε={e}" for e in fgsm) + " | PGD ε=0.1 (white-box, 1,000 images) |",
             "|---|---|" + "---|" * (len(noise) + len(fgsm) + 1)]
    for entry in entries:
        m = entry.metrics
        pgd = m.get("robustness", {}).get("top1_pgd", {}).get("white_box", {}).get("0.1")
        lines.append(f"| `{entry.entrypoint}` ({entry.learning_rule}) | {m['top1']:.2f} | "
                     + " | ".join(f"{m['top1_noise'][s]:.2f}" for s in noise) + " | "
                     + " | ".join(f"{m['top1_fgsm'][e]:.2f}" for e in fgsm) + " | "
                     + (f"{pgd:.1f}" if pgd is not None else "—") + " |")
    return "\n".join(lines)


def render_targets(manifest: Manifest) -> str:
    """Markdown table: every checkpoint with a bar (:data:`training.targets.TARGETS`), its measured top-1 beside it."""
    order = {tag: i for i, tag in enumerate(DATASETS)}
    lines = ["| checkpoint | top-1 | bar | anchor |", "|---|---|---|---|"]
    for model_id in sorted(TARGETS, key=lambda i: (order[i.split(".")[1]], i)):
        target, entry = TARGETS[model_id], manifest.entries.get(model_id)
        if entry is None or not entry.published:
            measured = "pending"
        elif entry.metrics["top1"] >= target.bar:
            measured = f"**{entry.metrics['top1']:.2f}**"
        else:
            measured = f"{entry.metrics['top1']:.2f} (below)"
        lines.append(f"| `{model_id}` | {measured} | {target.bar:g} | {target.anchor} |")
    return "\n".join(lines)


def render_krotov_width(results: Mapping[str, Any]) -> str:
    """Markdown table of ``benchmarks/krotov_width.py``'s results: zoo top-1 beside the seed project's, per width."""
    seed = results["seed_figures"]
    measured = {(r["dataset"], r["family"], r["width"]): r["top1"] for r in results["rows"]}
    lines = ["| dataset | hidden units | Krotov (zoo) | Krotov (seed) | backprop, 1 hidden layer (zoo) | "
             "backprop (seed) |", "|---|---|---|---|---|---|"]
    for dataset, by_family in seed.items():
        for width in sorted(int(w) for w in by_family["krotov_mlp"]):
            cells = []
            for family in ("krotov_mlp", "bp_mlp"):
                zoo = measured.get((dataset, family, width))
                cells += ["—" if zoo is None else f"{zoo:.2f}", f"{by_family[family][str(width)]}"]
            lines.append(f"| {DATASETS[dataset].title} | {width:,} | " + " | ".join(cells) + " |")
    lines.append(f"\nZoo figures: top-1 on the full official test split; backprop trained for {results['bp_epochs']} "
                 "epochs. Seed figures: validation accuracies.")
    if results.get("smoke"):
        lines.append("\n*Smoke run (500 training images, 2 epochs): these figures check the pipeline only.*")
    return "\n".join(lines)


def krotov_width_block() -> str:
    """The README block of the width benchmark, or a line saying it has not been run."""
    if not KROTOV_WIDTH_RESULTS.is_file():
        return "Not measured yet: run `python benchmarks/krotov_width.py`."
    return render_krotov_width(json.loads(KROTOV_WIDTH_RESULTS.read_text()))


def render_retrains(manifest: Manifest) -> str:
    """The legacy retrains recorded so far (old, new, Δ, replaced) and how many legacy entries are still to run."""
    record = retrain.read_record()
    waiting = sorted(i for i in retrain.legacy_ids(manifest) if i not in record)
    replaced = sum(r["replaced"] for r in record.values())
    lines = [retrain.table(record), "",
             f"{len(record)} retrained, {replaced} of them replaced; {len(waiting)} still to run"
             + (f": {', '.join(f'`{i}`' for i in waiting)}." if waiting else ".")]
    return "\n".join(lines)


def updated_readme(text: str, table: str, markers: tuple[str, str] = RESULTS) -> str:
    """README text with the table between the markers replaced."""
    start, end = markers
    if start not in text or end not in text:
        raise ValueError(f"README.md must contain the markers {start} and {end}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{table}\n{end}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    readme = REPO_ROOT / "README.md"
    text = readme.read_text()
    new = updated_readme(text, render_table(read_manifest(manifest_path())))
    new = updated_readme(new, render_rules(), RULES)
    new = updated_readme(new, render_attacks(read_manifest(manifest_path())), ATTACKS)
    new = updated_readme(new, render_seed_question(read_manifest(manifest_path())), SEED_QUESTION)
    new = updated_readme(new, krotov_width_block(), KROTOV_WIDTH)
    new = updated_readme(new, render_targets(read_manifest(manifest_path())), TARGETS_BLOCK)
    new = updated_readme(new, render_retrains(read_manifest(manifest_path())), RETRAINS)
    if args.check:
        if new != text:
            print("README.md's generated tables are out of date: run `python -m training.readme_table`",
                  file=sys.stderr)
            return 1
        return 0
    Path(readme).write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
