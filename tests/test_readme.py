"""README's generated tables (results from the manifest, learning rules from the registry) must be current."""
from __future__ import annotations

from training.readme_table import (
    RESULTS,
    RULES,
    SEED_MODELS,
    main,
    render_rules,
    render_seed_question,
    render_table,
    render_targets,
    updated_readme,
)
from training.targets import TARGETS
from zoo.registry import families, rules
from zoo.weights.manifest import read_manifest
from zoo.weights.paths import REPO_ROOT


def test_readme_tables_are_current() -> None:
    assert main(["--check"]) == 0, "run `python -m training.readme_table`"


def test_table_lists_every_manifest_entry() -> None:
    manifest = read_manifest(REPO_ROOT / "weights_manifest.json")
    table = render_table(manifest)
    for entry in manifest.entries.values():
        assert f"`{entry.entrypoint}`" in table
    start, end = RESULTS
    assert updated_readme(f"a\n{start}\nold\n{end}\nb", table) == f"a\n{start}\n{table}\n{end}\nb"


def test_rule_table_has_a_row_per_rule_naming_each_family() -> None:
    table = render_rules()
    rows = [line for line in table.splitlines()[2:]]
    assert [row.split("|")[1].strip() for row in rows] == [f"`{name}`" for name in rules()]
    for name in families():
        assert f"`{name}`" in table
    for row in rows:  # cells hold no unescaped "|" (|R| in a formula must not split the row)
        assert row.replace("\\|", "").count("|") == 5
    start, end = RULES
    assert updated_readme(f"{start}\n{end}", table, RULES) == f"{start}\n{table}\n{end}"


def test_seed_question_table_shows_the_manifest_figures_of_its_published_models() -> None:
    manifest = read_manifest(REPO_ROOT / "weights_manifest.json")
    rows = render_seed_question(manifest).splitlines()[2:]
    published = [i for i in SEED_MODELS if i in manifest.entries and manifest.entries[i].published]
    assert len(rows) == len(published)
    for row, model_id in zip(rows, published):
        metrics = manifest.entries[model_id].metrics
        cells = [c.strip() for c in row.split("|")[2:-1]]
        assert cells[:4] == [f"{metrics['top1']:.2f}", *(f"{v:.2f}" for v in metrics["top1_noise"].values())]


def test_targets_name_manifest_checkpoints_and_the_table_marks_each_against_its_bar() -> None:
    manifest = read_manifest(REPO_ROOT / "weights_manifest.json")
    assert set(TARGETS) <= set(manifest.entries)
    rows = {row.split("|")[1].strip(" `"): row for row in render_targets(manifest).splitlines()[2:]}
    assert set(rows) == set(TARGETS)
    for model_id, target in TARGETS.items():
        entry, cell = manifest.entries[model_id], rows[model_id].split("|")[2].strip()
        if not entry.published:
            assert cell == "pending"
        elif entry.metrics["top1"] >= target.bar:
            assert cell == f"**{entry.metrics['top1']:.2f}**"
        else:
            assert cell == f"{entry.metrics['top1']:.2f} (below)"


def test_readme_lists_every_legacy_retrain() -> None:
    """Which older checkpoints a retrain moved, and by how much, is in README as recorded."""
    from training.readme_table import RETRAINS
    from training.retrain import read_record

    start, end = RETRAINS
    block = (REPO_ROOT / "README.md").read_text().split(start, 1)[1].split(end, 1)[0]
    record = read_record()
    assert record, "results/legacy_retrains.json records the retrains run so far"
    for model_id, r in record.items():
        assert (f"| `{model_id}` | {r['old_top1']:.2f} | {r['new_top1']:.2f} | {r['delta_pp']:+.2f} | "
                f"{'yes' if r['replaced'] else 'no'} |") in block
