"""``pip install`` from the repository gives a package that works from any directory, fetching its weights."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import zoo
from zoo.weights.paths import REPO_ROOT
from zoo.weights.resolve import checkout_file


def test_built_wheel_works_outside_the_checkout(tmp_path, file_server) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(REPO_ROOT)], check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = wheels.glob("bioplausible_zoo-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "zoo/weights_manifest.json" in names and "zoo/data/bundled/t10k-images-idx3-ubyte.gz" in names
    assert not any(name.endswith(".safetensors") for name in names), "checkpoints are fetched, not shipped"
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300)

    entry = zoo.get_weights("bp_mlp.mnist").entry
    server = file_server({entry.filename: checkout_file(entry).read_bytes()})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = ("import zoo, torch; from zoo.data import load_split; from zoo.evaluation.evaluate import top1; "
              "x, y = load_split('mnist', 'test'); m = zoo.load('bp_mlp.mnist'); "
              "print(zoo.__file__); print(len(zoo.list_models())); print(top1(m, x, y))")
    env = {"PYTHONPATH": str(site), "ZOO_WEIGHTS_URL": server.base_url, "TORCH_HOME": str(tmp_path / "torch"),
           "HF_HUB_OFFLINE": "0", "PATH": "/usr/bin:/bin", "NO_PROXY": "127.0.0.1,localhost"}
    result = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    location, count, accuracy = result.stdout.split()
    assert Path(location).is_relative_to(site), "the installed copy, not the checkout, was imported"
    assert int(count) == len(zoo.list_models())
    assert abs(float(accuracy) - entry.metrics["top1"]) <= 0.05
    assert server.requests == [entry.filename], "the weights came over HTTP from the manifest's URL (base replaced)"


def test_import_zoo_leaves_readers_downloads_and_the_hub_client_unloaded() -> None:
    """``import zoo`` loads torch and the manifest code; data readers, downloads and huggingface_hub wait until used
    (measured in a fresh interpreter)."""
    probe = ("import sys; import zoo; print(' '.join(sorted(m for m in sys.modules if m.startswith("
             "('zoo.data.idx', 'zoo.data.cifar', 'zoo.data.mnist', 'zoo.data.fetch', 'zoo.weights.download', "
             "'zoo.weights.resolve', 'zoo.weights.hf_hub', 'huggingface_hub', 'zoo.rules.krotov')))))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            cwd=str(REPO_ROOT))
    assert result.stdout.split() == []
    assert callable(zoo.from_hub)  # loaded on first use
