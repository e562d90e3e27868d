"""``python -m zoo`` as a user runs it (a real subprocess)."""
from __future__ import annotations

import subprocess
import sys

from zoo.paths import REPO_ROOT


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
    assert run("download", tiny_zoo.model_id).stdout.strip() == str(tiny_zoo.checkpoint)


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
