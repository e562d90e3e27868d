"""README's results table is generated from the manifest and must be current."""
from __future__ import annotations

from training.readme_table import END, START, main, render_table, updated_readme
from zoo.manifest import read_manifest
from zoo.paths import REPO_ROOT


def test_readme_results_table_is_current() -> None:
    assert main(["--check"]) == 0, "run `python -m training.readme_table`"


def test_table_lists_every_manifest_entry() -> None:
    manifest = read_manifest(REPO_ROOT / "weights_manifest.json")
    table = render_table(manifest)
    for entry in manifest.entries.values():
        assert f"`{entry.entrypoint}`" in table
    assert updated_readme(f"a\n{START}\nold\n{END}\nb", table) == f"a\n{START}\n{table}\n{END}\nb"
