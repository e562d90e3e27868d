"""Generate the results report from the weights manifest: ``docs/results.md``, its pictures in ``docs/results/``
and ``results/results.csv`` (one row per published checkpoint, for pandas users, like timm's results CSVs).

    python -m training.report           # rewrite the report; redraw only the pictures whose data changed
    python -m training.report --check   # exit 1 if the report does not match the manifest (CI runs this test)
    python -m training.report --redraw  # redraw every picture (after a change to how they are drawn)

Every picture is written beside the fingerprint of the data it was drawn from (a comment in the Markdown), so a
stale picture shows up as a changed Markdown line; pictures need matplotlib, and the receptive fields the
checkpoint files. Nothing is measured here: every figure is the manifest's, which ``python -m zoo verify``
recomputes.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from training.seed_spread import read_record, spread
from zoo.data.catalog import DATASETS
from zoo.evaluation.metric_grid import ATTACK_MODELS, perturbation_size
from zoo.registry import families
from zoo.weights.manifest import Entry, Manifest, read_manifest
from zoo.weights.paths import REPO_ROOT, manifest_path

REPORT = Path("docs") / "results.md"
FIGURES = Path("docs") / "results"
CSV_FILE = Path("results") / "results.csv"
OWN_NETWORK = "own"  # families whose network is their rule's own (Hebbian layers, equilibrium nets): no architecture
RECEPTIVE_FIELD_RULES = ("krotov", "semihebb", "softhebb")  # unsupervised first layers worth looking at
CLAIM_EPSILON = {"mnist": "0.1", "fashion_mnist": "0.1", "cifar10": "8/255"}  # the ε of the attack summary table
FINGERPRINT = re.compile(r"<!-- data (?P<name>[\w.-]+\.png) (?P<digest>[0-9a-f]{12}) -->")


@dataclass(frozen=True)
class Figure:
    """One picture of the report: its file name, caption, the data it shows and how to draw it."""

    name: str
    caption: str
    data: Any
    draw: Callable[[Path], Any]

    @property
    def fingerprint(self) -> str:
        """The first 12 hex digits of the SHA-256 of the data (canonical JSON)."""
        return hashlib.sha256(json.dumps(self.data, sort_keys=True).encode()).hexdigest()[:12]

    def markdown(self) -> str:
        return f"![{self.caption}](results/{self.name})\n<!-- data {self.name} {self.fingerprint} -->"


def _published(manifest: Manifest, dataset: str) -> list[Entry]:
    return sorted((e for e in manifest.entries.values() if e.published and e.dataset == dataset), key=lambda e: e.id)


def architecture_group(entry: Entry) -> str:
    """The architecture a checkpoint's family is built on, or ``own`` for a rule's own network."""
    return families()[entry.entrypoint].architecture or OWN_NETWORK


def group_title(group: str) -> str:
    """How a figure names an architecture group."""
    return "the rules' own networks" if group == OWN_NETWORK else f"architecture `{group}`"


def _groups(entries: Sequence[Entry]) -> dict[str, list[Entry]]:
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(architecture_group(entry), []).append(entry)
    return dict(sorted(groups.items()))


# ---------------------------------------------------------------- figures


def params_figure(dataset: str, entries: Sequence[Entry]) -> Figure:
    """Top-1 against the parameter count, one point per checkpoint (colour: rule, marker: architecture)."""
    points = [[e.entrypoint, families()[e.entrypoint].rule, architecture_group(e), e.num_params, e.metrics["top1"]]
              for e in entries]

    def draw(path: Path) -> None:
        from zoo.evaluation.plotting import pyplot, save_figure

        plt = pyplot("drawing the results report")
        rules = sorted({rule for _, rule, _, _, _ in points})
        groups = sorted({group for _, _, group, _, _ in points})
        fig, ax = plt.subplots(figsize=(9, 4.8))
        for name, rule, group, params, top1 in points:
            ax.scatter(params, top1, color=plt.get_cmap("tab20")(rules.index(rule) % 20),
                       marker="osD^v<>"[groups.index(group) % 7], label=name, s=40)
        ax.set(xscale="log", xlabel="parameters", ylabel="top-1 (%), test split",
               title=f"{DATASETS[dataset].title}: accuracy vs parameters (colour: rule, marker: architecture)")
        ax.grid(alpha=0.3)
        save_figure(fig, path)

    return Figure(f"params-{dataset}.png", f"{DATASETS[dataset].title}: top-1 vs parameters", points, draw)


def attack_figure(dataset: str, group: str, entries: Sequence[Entry]) -> Figure:
    """The PGD attack comparison (white-box, rule gradient, transfer) of one architecture."""
    from zoo.evaluation.robustness_plots import attack_comparison, save_attack_plot

    steps = entries[0].metrics['robustness']['pgd']['steps']
    title = f"{DATASETS[dataset].title}, {group_title(group)}: PGD ({steps} steps)".replace("`", "")
    return Figure(f"pgd-{dataset}-{group}.png", title, {e.id: attack_comparison(e) for e in entries},
                  lambda path: save_attack_plot(entries, path, "pgd", title=title))


def noise_figure(dataset: str, entries: Sequence[Entry]) -> Figure:
    """Accuracy vs Gaussian σ and FGSM ε on the whole test split."""
    from zoo.evaluation.robustness_plots import full_test_curves, save_noise_plot

    title = DATASETS[dataset].title  # the picture says which images it was measured on
    return Figure(f"noise-{dataset}.png", title, {e.id: full_test_curves(e) for e in entries},
                  lambda path: save_noise_plot(entries, path, title=title))


def curves_figure(dataset: str, group: str, entries: Sequence[Entry]) -> Figure:
    """Learning curves of the checkpoints whose runs recorded them."""
    from zoo.evaluation.curves import save_curves

    return Figure(f"curves-{dataset}-{group}.png",
                  f"{DATASETS[dataset].title}, {group_title(group)}: learning curves".replace("`", ""),
                  {e.id: e.recipe["curve"] for e in entries}, lambda path: save_curves(entries, path))


def filters_figure(entry: Entry) -> Figure:
    """The learned receptive fields of a Hebbian checkpoint (its first fully connected layer)."""

    def draw(path: Path) -> None:
        from zoo.api import load
        from zoo.evaluation.filters import save_filters

        save_filters(load(entry.id, source="local"), path, title=entry.id)

    return Figure(f"filters-{entry.id}.png", f"{entry.id}: learned receptive fields", entry.sha256, draw)


# ---------------------------------------------------------------- tables


def attack_table(dataset: str, entries: Sequence[Entry]) -> str:
    """Clean and PGD top-1 at the dataset's summary ε under each attack model, one row per checkpoint."""
    eps = CLAIM_EPSILON[dataset]
    lines = ["| model | clean | white-box | rule gradient | transfer from `bp` |", "|---|---|---|---|---|"]
    for entry in entries:
        block = entry.metrics["robustness"]
        cells = [f"{block['top1_pgd'][m][eps]:.1f}" if m in block["top1_pgd"] else "—" for m in ATTACK_MODELS]
        lines.append(f"| `{entry.entrypoint}` | {block['top1_clean']:.1f} | " + " | ".join(cells) + " |")
    return (f"PGD top-1 (%) at ε = {eps} on the first {entries[0].metrics['robustness']['n_eval']:,} test images "
            "(— : the model has no rule gradient of its own, or is the transfer source):\n\n" + "\n".join(lines))


def alignment_table(entries: Sequence[Entry], key: str = "alignment_deg",
                    heading: str = "angle per layer (degrees; 0 = the backprop direction)") -> str:
    """Per-layer angles (degrees) recorded under ``metrics[key]``, one row per checkpoint: by default between the
    rule's update and the backprop gradient."""
    rows = [(e.entrypoint, e.metrics[key]) for e in entries if e.metrics.get(key)]
    if not rows:
        return "No checkpoint of this dataset records these angles."
    lines = [f"| model | {heading} |", "|---|---|"]
    for name, angles in rows:
        lines.append(f"| `{name}` | " + ", ".join(f"{layer} {deg:.1f}" for layer, deg in angles.items()) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- report


def dataset_section(manifest: Manifest, dataset: str) -> tuple[str, list[Figure]]:
    """The Markdown of one dataset and the figures it shows."""
    entries = _published(manifest, dataset)
    title = DATASETS[dataset].title
    if not entries:
        return f"## {title}\n\nNo published checkpoint yet.\n", []
    figures = [params_figure(dataset, entries), noise_figure(dataset, entries)]
    parts = [f"## {title}", f"### Accuracy and parameters\n\n{figures[0].markdown()}",
             f"### Robustness\n\n{figures[1].markdown()}"]
    attacked = [e for e in entries if "robustness" in e.metrics]
    if attacked:
        parts.append("Attack comparison (`metrics.robustness`, `python -m training.robustness`): the attacker "
                     "follows the true input gradient (white-box), the input gradient the learning rule itself "
                     "propagates (rule gradient), or crafts the images on the backprop model of the same "
                     "architecture (transfer).\n\n" + attack_table(dataset, attacked))
        for group, members in _groups(attacked).items():
            reference = manifest.entries.get(f"bp_mlp.{dataset}")  # the reference they transfer from
            if group == OWN_NETWORK and reference is not None and reference in attacked:
                members = [reference, *members]
            figure = attack_figure(dataset, group, members)
            figures.append(figure)
            parts.append(figure.markdown())
    parts.append("### Alignment with backprop\n\n" + alignment_table(entries))
    if any(e.metrics.get("feedback_angle_deg") for e in entries):
        parts.append("### Feedback and forward weights\n\nThe angle between each layer's feedback matrix B and "
                     "its forward weights W (`metrics.feedback_angle_deg`). Kolen-Pollack's B is learned: drawn "
                     "independently of W it starts about 90° away (89.6-90.7° per layer for `kp_lenet` at seed 0) "
                     "and turns towards W as training goes.\n\n"
                     + alignment_table(entries, "feedback_angle_deg", "angle between B and W per layer (degrees; "
                                       "0 = backprop's W^T transport)"))
    curved = [e for e in entries if e.recipe.get("curve")]
    if curved:
        parts.append("### Learning curves")
        for group, members in _groups(curved).items():
            figures.append(curves_figure(dataset, group, members))
            parts.append(figures[-1].markdown())
    hebbian = [e for e in entries if families()[e.entrypoint].rule in RECEPTIVE_FIELD_RULES]
    if hebbian:
        parts.append("### Receptive fields")
        for entry in hebbian:
            figures.append(filters_figure(entry))
            parts.append(figures[-1].markdown())
    return "\n\n".join(parts) + "\n", figures


def render(manifest: Manifest) -> tuple[str, str, list[Figure]]:
    """The report's Markdown, its CSV text and the figures the Markdown shows."""
    sections = [dataset_section(manifest, dataset) for dataset in DATASETS]
    markdown = ("# Results\n\nGenerated by `python -m training.report` from `weights_manifest.json`; do not edit. "
                "Every figure is a measured one that `python -m zoo verify` (and `--robustness`) recomputes. "
                f"The same figures as a table: [`{CSV_FILE.as_posix()}`](../{CSV_FILE.as_posix()}).\n\n"
                + "\n".join(text for text, _ in sections))
    figures = [figure for _, group in sections for figure in group]
    return markdown, results_csv(manifest), figures


def csv_row(entry: Entry, seeds: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One flat record of a published checkpoint (or a run folder's): identity, size, provenance and every recorded
    figure; with ``seeds`` (:func:`training.seed_spread.read_record`), the test top-1's mean, standard deviation and
    count over the seeds recorded for it."""
    family = families()[entry.entrypoint]
    metrics = entry.metrics
    row: dict[str, Any] = {"id": entry.id, "family": entry.entrypoint, "rule": family.rule,
                           "learning_rule": entry.learning_rule, "architecture": architecture_group(entry),
                           "dataset": entry.dataset, "top1": metrics["top1"], "n_eval": metrics["n_eval"],
                           "num_params": entry.num_params, "size_bytes": entry.size_bytes,
                           "epochs": entry.recipe["epochs"], "wall_time_s": entry.recipe["wall_time_s"],
                           "fine_tuned_from": entry.recipe["config"].get("init") or ""}
    found = spread(dict(seeds or {}), entry)
    row.update({"top1_seed_mean": round(found[0], 2) if found else "", "top1_seed_std": round(found[1], 2) if found
                else "", "top1_seeds": found[2] if found else 1})
    row.update({f"top1_noise_{k}": v for k, v in metrics["top1_noise"].items()})
    row.update({f"top1_fgsm_{k}": v for k, v in metrics.get("top1_fgsm", {}).items()})
    block = metrics.get("robustness")
    if block is not None:
        for attack in ("fgsm", "pgd"):
            for model, curve in block[f"top1_{attack}"].items():
                row.update({f"{attack}_{model}_{k}": v for k, v in curve.items()})
    row.update({"sha256": entry.sha256, "url": entry.url})
    return row


def csv_rows(manifest: Manifest) -> list[dict[str, Any]]:
    """:func:`csv_row` of every published checkpoint, by id."""
    seeds = read_record()
    return [csv_row(e, seeds) for e in sorted((e for e in manifest.entries.values() if e.published),
                                              key=lambda e: e.id)]


def _column_order(name: str) -> tuple[int, float]:
    match = re.search(r"_([0-9./]+)$", name)
    return (0, 0.0) if match is None else (1, perturbation_size(match.group(1)))


def results_csv(manifest: Manifest) -> str:
    """The CSV text of :func:`csv_rows`."""
    return csv_text(csv_rows(manifest))


def csv_text(rows: Sequence[dict[str, Any]]) -> str:
    """CSV of ``rows``: fixed columns first, then the figures grouped by kind and size."""
    fixed = [name for name in rows[0] if _column_order(name)[0] == 0 and name not in ("sha256", "url")] if rows else []
    figures = sorted({name for row in rows for name in row if _column_order(name)[0] == 1},
                     key=lambda n: (n.rsplit("_", 1)[0], _column_order(n)[1]))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*fixed, *figures, "sha256", "url"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def recorded_fingerprints(markdown: str) -> dict[str, str]:
    """``{picture name: data fingerprint}`` as written in a report's Markdown."""
    return {m["name"]: m["digest"] for m in FINGERPRINT.finditer(markdown)}


def stale(root: Path, manifest: Manifest) -> list[str]:
    """What in the report under ``root`` does not match ``manifest`` (empty when it is current)."""
    markdown, table, figures = render(manifest)
    problems = []
    for path, text in ((root / REPORT, markdown), (root / CSV_FILE, table)):
        if not path.is_file() or path.read_text() != text:
            problems.append(f"{path.relative_to(root)} differs from the manifest")
    problems += [f"{FIGURES / f.name} is missing" for f in figures if not (root / FIGURES / f.name).is_file()]
    return problems


def write_report(root: Path, manifest: Manifest, redraw: bool = False) -> list[Path]:
    """Write the report under ``root``; redraw the pictures whose data changed (or are missing; all of them with
    ``redraw``, after a change to the drawing code); delete pictures the report no longer shows. Return the
    pictures drawn."""
    markdown, table, figures = render(manifest)
    report = root / REPORT
    before = recorded_fingerprints(report.read_text()) if report.is_file() else {}
    folder = root / FIGURES
    folder.mkdir(parents=True, exist_ok=True)
    drawn = []
    for figure in figures:
        path = folder / figure.name
        if redraw or before.get(figure.name) != figure.fingerprint or not path.is_file():
            tmp = path.with_name(f".{path.stem}.tmp.png")
            figure.draw(tmp)
            tmp.replace(path)
            drawn.append(path)
    shown = {figure.name for figure in figures}
    for old in folder.glob("*.png"):
        if old.name not in shown:
            old.unlink()
    for path, text in ((report, markdown), (root / CSV_FILE, table)):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return drawn


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if the report is stale; write nothing")
    parser.add_argument("--redraw", action="store_true", help="redraw every picture (after changing how they are "
                                                              "drawn)")
    args = parser.parse_args(argv)
    manifest = read_manifest(manifest_path())
    if args.check:
        problems = stale(REPO_ROOT, manifest)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("regenerate it: python -m training.report", file=sys.stderr)
        return 1 if problems else 0
    for path in write_report(REPO_ROOT, manifest, redraw=args.redraw):
        print(f"drew {path.relative_to(REPO_ROOT)}")
    print(f"wrote {REPORT} and {CSV_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
