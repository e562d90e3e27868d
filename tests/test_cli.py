"""``python -m zoo`` as a user runs it (a real subprocess)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from zoo.weights.paths import REPO_ROOT


def run(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "zoo", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          env=env, timeout=300)


def test_list_info_eval_export(tiny_zoo, tmp_path) -> None:
    listing = run("list")
    assert listing.returncode == 0 and tiny_zoo.model_id in listing.stdout
    info = run("info", tiny_zoo.model_id)
    assert info.returncode == 0 and tiny_zoo.sha256 in info.stdout
    evaluated = run("eval", tiny_zoo.model_id, "--limit", "500")
    assert evaluated.returncode == 0 and "on 500 mnist test images" in evaluated.stdout
    exported = run("export-hf", tiny_zoo.model_id, str(tmp_path / "hf"))
    assert exported.returncode == 0 and (tmp_path / "hf" / "model.safetensors").is_file()
    assert run("download", tiny_zoo.model_id).returncode == 0


def test_verify_exit_status(tiny_zoo) -> None:
    ok = run("verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 mismatches" in ok.stdout
    tiny_zoo.checkpoint.write_bytes(tiny_zoo.checkpoint.read_bytes()[:-1] + b"\0")
    bad = run("verify")
    assert bad.returncode == 1 and "FAIL" in bad.stdout and tiny_zoo.sha256 in bad.stdout


def test_unknown_id_is_one_clear_line() -> None:
    result = run("info", "bp_mlp.mnsit")
    assert result.returncode == 2
    assert "Did you mean: bp_mlp.mnist" in result.stderr and "Traceback" not in result.stderr


def add_entry(tiny_zoo, **changes: object) -> str:
    """Add a copy of the tiny entry with ``changes`` to the tiny manifest (through the manifest's own writer)."""
    from zoo.weights.manifest import Entry, read_manifest, write_manifest

    manifest = read_manifest(tiny_zoo.manifest)
    entry = manifest.entries[tiny_zoo.model_id]
    new = Entry(**{**entry.__dict__, **changes})
    write_manifest(manifest.with_entry(new), tiny_zoo.manifest)
    return new.id


def test_verify_checks_every_hash_and_reports_missing_data(tiny_zoo, tmp_path) -> None:
    name = f"weights/bp_mlp.fashion_mnist-{tiny_zoo.sha256[:8]}.safetensors"
    (tiny_zoo.root / name).write_bytes(tiny_zoo.checkpoint.read_bytes())
    from zoo.data import DATASETS

    info = DATASETS["fashion_mnist"]  # the entry's arch must be its dataset's (the zoo checks it against the family)
    arch = {**json.loads(tiny_zoo.manifest.read_text())["weights"][0]["arch"], "mean": list(info.mean),
            "std": list(info.std)}
    fashion = add_entry(tiny_zoo, id="bp_mlp.fashion_mnist", dataset="fashion_mnist", file=name, arch=arch)
    empty = {"ZOO_DATA_ROOT": str(tmp_path / "no-data")}
    strict = run("verify", env_extra=empty)
    assert strict.returncode == 1, strict.stdout + strict.stderr
    lines = strict.stdout.splitlines()
    assert any(line.startswith("ok") and tiny_zoo.model_id in line and "top1" in line for line in lines)
    assert any(line.startswith("ok") and fashion in line and "sha256" in line for line in lines)
    assert any(line.startswith("skip") and fashion in line and "not checked" in line for line in lines)
    assert "--allow-missing-data" in strict.stderr
    relaxed = run("verify", "--allow-missing-data", env_extra=empty)
    assert relaxed.returncode == 0 and "1 top-1 not checked" in relaxed.stdout


def test_verify_refuses_unknown_and_pending_ids(tiny_zoo) -> None:
    typo = run("verify", "bp_mlp.mnst")
    assert typo.returncode == 2 and "Did you mean: bp_mlp.mnist" in typo.stderr
    pending = add_entry(tiny_zoo, id="bp_mlp.cifar10", dataset="cifar10", status="pending",
                        pending_reason="Not trained yet.", file=None, sha256=None, size_bytes=None, num_params=None,
                        metrics={}, url=None)
    refused = run("verify", pending)
    assert refused.returncode == 2 and "not published yet" in refused.stderr


def test_export_hf_refuses_a_non_empty_folder_and_leaves_nothing_on_failure(tiny_zoo, tmp_path) -> None:
    target = tmp_path / "checkout"
    target.mkdir()
    (target / "README.md").write_text("the project's own readme")
    refused = run("export-hf", tiny_zoo.model_id, str(target))
    assert refused.returncode == 2 and "not empty" in refused.stderr and "--force" in refused.stderr
    assert (target / "README.md").read_text() == "the project's own readme"
    forced = run("export-hf", tiny_zoo.model_id, str(target), "--force")
    assert forced.returncode == 0 and (target / "model.safetensors").is_file()
    onto_file = run("export-hf", tiny_zoo.model_id, str(target / "README.md"))
    assert onto_file.returncode == 2 and onto_file.stderr.startswith("error: ") and "Traceback" not in onto_file.stderr
    tiny_zoo.checkpoint.unlink()  # no copy anywhere and no network: the export fails
    failed = run("export-hf", tiny_zoo.model_id, str(tmp_path / "new"), env_extra={"ZOO_OFFLINE": "1"})
    assert failed.returncode == 2 and not (tmp_path / "new").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_errors_are_one_line_with_debug_for_the_traceback(tiny_zoo) -> None:
    from zoo.weights.integrity import sha256_file

    bad_limit = run("eval", tiny_zoo.model_id, "--limit", "0")
    assert bad_limit.returncode == 2
    assert bad_limit.stderr == "error: --limit must be a positive number of images, got 0\n"
    tiny_zoo.checkpoint.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a safetensors header")
    add_entry(tiny_zoo, sha256=sha256_file(tiny_zoo.checkpoint), size_bytes=tiny_zoo.checkpoint.stat().st_size)
    malformed = run("eval", tiny_zoo.model_id, "--limit", "10")
    assert malformed.returncode == 2 and malformed.stderr.startswith("error: ") and "Traceback" not in malformed.stderr
    debug = run("--debug", "eval", tiny_zoo.model_id, "--limit", "10")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_unknown_id_suggestions_ignore_case() -> None:
    result = run("info", "BP_MLP.MNIST")
    assert result.returncode == 2 and "Did you mean: bp_mlp.mnist" in result.stderr


def test_robustness_is_recorded_then_verified(tiny_zoo) -> None:
    """training.robustness records metrics.robustness; verify --robustness recomputes every figure."""
    pytest.importorskip("foolbox")
    from training.robustness import main as measure

    assert measure([tiny_zoo.model_id, "--images", "50"]) == 0
    block = json.loads(tiny_zoo.manifest.read_text())["weights"][0]["metrics"]["robustness"]
    assert block["n_eval"] == 50 and block["transfer_source"] is None  # a backprop model: no transfer, no rule
    assert set(block["top1_pgd"]) == {"white_box"}
    ok = run("verify", tiny_zoo.model_id, "--robustness")
    assert ok.returncode == 0 and "pgd:white_box" in ok.stdout, ok.stdout + ok.stderr
    raw = json.loads(tiny_zoo.manifest.read_text())
    curve = raw["weights"][0]["metrics"]["robustness"]["top1_pgd"]["white_box"]
    curve["0.05"] = 100.0 if curve["0.05"] < 50 else 0.0
    tiny_zoo.manifest.write_text(json.dumps(raw))
    bad = run("verify", tiny_zoo.model_id, "--robustness")
    assert bad.returncode == 1 and "FAIL" in bad.stdout
    curve["0.05"] = block["top1_pgd"]["white_box"]["0.05"]
    raw["weights"][0]["metrics"]["robustness"]["logit_temperature"]["white_box"] = 10.0
    tiny_zoo.manifest.write_text(json.dumps(raw))
    tempered = run("verify", tiny_zoo.model_id, "--robustness")
    assert tempered.returncode == 1 and "FAIL" in tempered.stdout and "logit_temperature" in tempered.stdout


def test_figures_measured_on_a_replaced_checkpoint_are_not_recorded(tiny_zoo) -> None:
    """A retrain replacing the checkpoint while its attack figures are measured: the figures are not written."""
    pytest.importorskip("foolbox")
    from training.publish import PublishError
    from training.robustness import main as measure
    from training.robustness import record

    assert measure([tiny_zoo.model_id, "--images", "20"]) == 0
    before = tiny_zoo.manifest.read_bytes()
    block = json.loads(before)["weights"][0]["metrics"]["robustness"]
    record(tiny_zoo.manifest, tiny_zoo.model_id, block, tiny_zoo.sha256)  # the measured checkpoint: written
    with pytest.raises(PublishError, match="changed while it was measured.*nothing written"):
        record(tiny_zoo.manifest, tiny_zoo.model_id, block, "f" * 64)
    assert tiny_zoo.manifest.read_bytes() == before


def test_download_puts_the_checkpoint_in_the_torch_hub_cache(tiny_zoo) -> None:
    """As timm and torchvision users expect: even when the checkout has the file, ``download`` leaves a verified copy
    in ``$TORCH_HOME/hub/checkpoints`` (no network needed for it) and prints that path."""
    import os
    from pathlib import Path

    cache = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"
    for _ in range(2):  # the second time the verified copy is kept
        result = run("download", tiny_zoo.model_id, env_extra={"ZOO_OFFLINE": "1"})
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == str(cache / tiny_zoo.checkpoint.name)
    assert (cache / tiny_zoo.checkpoint.name).read_bytes() == tiny_zoo.checkpoint.read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == sorted([tiny_zoo.checkpoint.name,
                                                              f"{tiny_zoo.checkpoint.name}.lock"])
    tiny_zoo.checkpoint.unlink()  # the cache alone serves it now
    cached = run("eval", tiny_zoo.model_id, "--source", "cache", "--limit", "10")
    assert cached.returncode == 0, cached.stderr


def test_a_given_data_root_must_exist_and_hold_the_dataset(tiny_zoo, tmp_path) -> None:
    absent = tmp_path / "nonexistent"
    missing = run("eval", tiny_zoo.model_id, "--data-root", str(absent), "--limit", "10")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.startswith(f"error: data root {absent} does not exist")
    assert "MNIST/raw/" in missing.stderr and len(missing.stderr.splitlines()) == 1
    empty = run("eval", tiny_zoo.model_id, "--data-root", str(tmp_path), "--limit", "10")
    assert empty.returncode == 2 and empty.stdout == ""  # not the bundled MNIST test split
    assert str(tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte") in empty.stderr


def test_explain_refuses_more_images_than_a_picture_holds(tmp_path) -> None:
    from zoo.evaluation.attributions import MAX_IMAGES

    out = tmp_path / "explain"
    result = run("explain", "bp_mlp.mnist", "--out", str(out), "--images", "100000")
    assert result.returncode == 2 and not out.exists()
    assert result.stderr == (f"error: the number of images must be a positive int of at most {MAX_IMAGES} (one "
                             "picture column each), not 100000\n")
    assert f"at most {MAX_IMAGES}" in run("explain", "--help").stdout


def test_export_nir_replaces_a_file_only_with_force(tmp_path) -> None:
    target = tmp_path / "snn.nir"
    target.write_text("someone's file")
    refused = run("export-nir", "snn_mlp.mnist", str(target))
    assert refused.returncode == 2 and refused.stderr == f"error: {target} exists; pass --force to replace it\n"
    assert target.read_text() == "someone's file"
    pytest.importorskip("nir")
    pytest.importorskip("snntorch")
    forced = run("export-nir", "snn_mlp.mnist", str(target), "--force")
    assert forced.returncode == 0, forced.stderr
    assert target.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"


def test_failed_analysis_commands_leave_no_folder(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    mixed = run("robustness", "bp_mlp.mnist", "bp_mlp.cifar10", "--out", str(tmp_path / "robustness" / "run"))
    assert mixed.returncode == 2 and "one dataset" in mixed.stderr
    bad_format = run("show-filters", "bp_mlp.mnist", "--out", str(tmp_path / "filters" / "f.xyz"))
    assert bad_format.returncode == 2 and "xyz" in bad_format.stderr
    curves = run("curves", "bp_mlp.cifar10", "--out", str(tmp_path / "curves" / "c.xyz"))
    assert curves.returncode == 2 and "xyz" in curves.stderr
    assert list(tmp_path.iterdir()) == []


def test_output_folder_removes_only_what_it_created(tmp_path) -> None:
    from zoo.evaluation.output import output_folder

    with pytest.raises(RuntimeError), output_folder(tmp_path / "a" / "b") as folder:
        (folder / "half.json").write_text("{")
        raise RuntimeError("drawing failed")
    assert not (tmp_path / "a").exists()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "old.png").write_bytes(b"png")
    with pytest.raises(RuntimeError), output_folder(tmp_path / "kept"):
        raise RuntimeError("drawing failed")
    assert (tmp_path / "kept" / "old.png").read_bytes() == b"png"
    with output_folder(tmp_path / "new") as folder:
        (folder / "done.json").write_text("{}")
    assert (tmp_path / "new" / "done.json").is_file()


def test_unknown_id_errors_show_close_matches_and_the_count_only() -> None:
    from zoo.api import list_models

    count = len(list_models(include_pending=True))
    typo = run("info", "bp_mlp.mnsit")
    assert typo.returncode == 2 and len(typo.stderr.splitlines()) == 1 and len(typo.stderr) < 300
    assert "Did you mean: bp_mlp.mnist" in typo.stderr and f"{count} model ids known" in typo.stderr
    assert "python -m zoo list --all" in typo.stderr and "snn_lenet.cifar10" not in typo.stderr
    far = run("info", "zzzz")
    assert far.returncode == 2 and len(far.stderr) < 300
    assert f"None of the {count} known model ids is close" in far.stderr
