"""The training script end to end on slices of real data: where runs write, determinism, resume, errors, logs."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import zoo
from training.publish import PublishError, publish_run
from training.train import main
from zoo.data import load_split
from zoo.engine.fit import FitConfig, augment, random_shift
from zoo.engine.local_phase import HebbianPhaseTrainer
from zoo.evaluation.curves import save_curves
from zoo.evaluation.evaluate import top1
from zoo.registry import families, get_family
from zoo.weights.checkpoint import load_into
from zoo.weights.manifest import read_manifest
from zoo.weights.paths import manifest_path
from zoo.weights.verify import verify_entry

REPO = Path(__file__).resolve().parent.parent


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_entry(out: Path) -> dict:
    return json.loads((out / "entry.json").read_text())


def checkpoint_of(out: Path) -> Path:
    return out / Path(run_entry(out)["file"]).name


def train_cli(*args: str, env_extra: dict[str, str] | None = None, runner: tuple[str, ...] = ()) -> \
        subprocess.Popen[str]:
    """``python -m training.train ARGS`` in a child process with one thread and no TTY."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    command = [*(runner or (sys.executable,)), "-m", "training.train", *args]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_smoke_run_writes_only_into_out_then_fine_tunes(tmp_path, data_root) -> None:
    published = manifest_path()
    before = sha256(published), sorted(p.name for p in (REPO / "weights").iterdir())
    out = tmp_path / "smoke"
    assert main(["bp_mlp", "--dataset", "mnist", "--epochs", "1", "--limit", "2000", "--data-root", str(data_root),
                 "--out", str(out), "--no-progress"]) == 0
    assert (sha256(published), sorted(p.name for p in (REPO / "weights").iterdir())) == before
    entry = read_manifest_entry(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(["entry.json", "run.json", entry.filename])
    assert entry.metrics["n_eval"] == 10000 and entry.metrics["top1"] > 60.0  # chance is 10%
    assert entry.recipe["command"] == "python -m training.train bp_mlp --dataset mnist --epochs 1 --limit 2000"
    assert entry.recipe["departures"] == ["--limit 2000", "--epochs 1"]
    assert [r["epoch"] for r in entry.recipe["curve"]] == [1]
    assert set(entry.recipe["curve"][0]) == {"epoch", "train_loss", "test_top1", "wall_s"}
    assert entry.recipe["threads"] == torch.get_num_threads() and entry.recipe["device"] == "cpu"
    assert set(entry.metrics["top1_fgsm"]) == {"0.05", "0.1"}
    png = save_curves([entry], tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="bp_mlp.mnist has no learning curve"):
        save_curves([zoo.get_weights("bp_mlp.mnist").entry], tmp_path / "none.png")

    fashion_x, fashion_y = load_split("fashion_mnist", "test", data_root, limit=2000)
    start = top1(zoo.load("bp_mlp.mnist"), fashion_x, fashion_y)
    tuned_dir = tmp_path / "tuned"
    assert main(["bp_mlp", "--dataset", "fashion_mnist", "--epochs", "1", "--limit", "2000", "--init",
                 "bp_mlp.mnist", "--data-root", str(data_root), "--out", str(tuned_dir), "--no-progress"]) == 0
    tuned = read_manifest_entry(tuned_dir)
    assert tuned.recipe["config"]["init"] == "bp_mlp.mnist"
    model = load_into(get_family("bp_mlp").build_model(tuned.arch), checkpoint_of(tuned_dir)).eval()
    assert top1(model, fashion_x, fashion_y) > start + 10


def read_manifest_entry(out: Path):
    from zoo.weights.manifest import Entry

    return Entry.from_dict(run_entry(out))


def test_a_departing_run_without_out_is_refused(tmp_path, data_root, capsys) -> None:
    before = sha256(manifest_path()), sorted(p.name for p in (REPO / "weights").iterdir())
    assert main(["bp_mlp", "--dataset", "fashion_mnist", "--epochs", "1", "--limit", "200",
                 "--data-root", str(data_root)]) == 2
    message = capsys.readouterr().err
    assert "departs from its recipe (--limit 200, --epochs 1)" in message and "--out DIR" in message
    assert (sha256(manifest_path()), sorted(p.name for p in (REPO / "weights").iterdir())) == before


def one_family_per_rule() -> list[str]:
    chosen: dict[str, str] = {}
    for name, family in families().items():
        if "mnist" in family.datasets:  # the runs below train on MNIST
            chosen.setdefault(family.learning_rule, name)
    return sorted(chosen.values())


@pytest.mark.parametrize("entrypoint", one_family_per_rule())
def test_same_command_same_bytes(entrypoint, tmp_path, data_root) -> None:
    """Every rule's random draws (weights, feedback matrices, sign-symmetry magnitudes, Hebbian init, data order,
    augmentation, dropout) follow the seed: two runs give one checkpoint, a third with another seed differs."""
    args = [entrypoint, "--dataset", "mnist", "--epochs", "1", "--limit", "600", "--test-limit", "200",
            "--data-root", str(data_root), "--no-progress"]
    if issubclass(get_family(entrypoint).trainer, HebbianPhaseTrainer):  # one Hebbian epoch, one head epoch
        args += ["--epochs", "2", "--set", "fit.rule.hebbian_epochs=1"]
    digests = []
    for i, seed in enumerate(("0", "0", "1")):
        out = tmp_path / f"run{i}"
        assert main([*args, "--seed", seed, "--out", str(out)]) == 0
        digests.append(sha256(checkpoint_of(out)))
    assert digests[0] == digests[1], f"{entrypoint}: the same command gave two different checkpoints"
    assert digests[0] != digests[2], f"{entrypoint}: the seed does not reach the model"


def kill_after_first_epoch(process: subprocess.Popen[str], out: Path, timeout: float = 120.0) -> None:
    """SIGKILL ``process`` as soon as it has saved the state of epoch 1."""
    deadline = time.monotonic() + timeout
    state = out / "state.json"
    while time.monotonic() < deadline:
        if state.is_file() and json.loads(state.read_text())["epochs_done"] >= 1:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended before it could be killed:\n{process.stdout.read() if process.stdout else ''}")
        time.sleep(0.05)
    process.kill()
    pytest.fail("no state saved after the first epoch")


@pytest.mark.parametrize("entrypoint, extra", [("brsf_lenet", []),
                                               ("semihebb_mlp", ["--set", "fit.rule.hebbian_epochs=2"])])
def test_killed_run_resumes_to_the_same_bytes(entrypoint, extra, tmp_path, data_root) -> None:
    args = [entrypoint, "--dataset", "mnist", "--epochs", "3", "--limit", "1000", "--test-limit", "500",
            "--data-root", str(data_root), "--no-progress", *extra]
    whole = train_cli(*args, "--out", str(tmp_path / "whole"))
    killed = train_cli(*args, "--out", str(tmp_path / "killed"))
    kill_after_first_epoch(killed, tmp_path / "killed")
    assert not (tmp_path / "killed" / "entry.json").exists()
    refused = train_cli(*args, "--out", str(tmp_path / "killed"))
    assert refused.wait() == 2 and "pass --resume" in refused.stdout.read()
    resumed = train_cli(*args, "--out", str(tmp_path / "killed"), "--resume")
    log = resumed.communicate()[0]
    assert resumed.returncode == 0, log
    assert "epoch 1/3" not in log and "epoch 2/3" in log, "the resumed run must start at epoch 2"
    assert whole.wait() == 0
    assert sha256(checkpoint_of(tmp_path / "killed")) == sha256(checkpoint_of(tmp_path / "whole"))
    assert [r["test_top1"] for r in run_entry(tmp_path / "killed")["recipe"]["curve"]] == \
        [r["test_top1"] for r in run_entry(tmp_path / "whole")["recipe"]["curve"]]
    assert not list((tmp_path / "killed").glob("state*")), "a finished run removes its resumable state"


@pytest.mark.parametrize("entrypoint, extra", [
    ("bp_mlp", ["--set", "arch.dropout=0"]),  # dropout masks depend on the shard; the rest must agree
    ("fa_mlp", []), ("dfa_mlp", []), ("dtp_mlp", []), ("krotov_mlp", []),
])
def test_two_processes_train_like_one(entrypoint, extra, tmp_path, data_root) -> None:
    """torchrun with 2 gloo processes and 1 process on the same global batches give the same weights."""
    args = [entrypoint, "--dataset", "mnist", "--epochs", "1", "--limit", "2000", "--test-limit", "200",
            "--data-root", str(data_root), "--no-progress", "--device", "cpu", *extra]
    single = train_cli(*args, "--out", str(tmp_path / "one"))
    pair = train_cli(*args, "--out", str(tmp_path / "two"),
                     runner=(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                             "--master_port", str(29500 + os.getpid() % 1000)))
    for process in (single, pair):
        log = process.communicate(timeout=300)[0]
        assert process.returncode == 0, log
    assert run_entry(tmp_path / "two")["recipe"]["processes"] == 2
    from safetensors.torch import load_file

    one, two = load_file(checkpoint_of(tmp_path / "one")), load_file(checkpoint_of(tmp_path / "two"))
    assert one.keys() == two.keys()
    for name in one:
        scale = one[name].norm().clamp_min(1e-12)
        assert float((one[name] - two[name]).norm() / scale) < 1e-4, name


@pytest.mark.parametrize("argv, message", [
    (["--init", "bp_mlp.cifar10"], "takes inputs of shape [3, 32, 32], this run's dataset has [1, 28, 28]"),
    (["--init", "bp_mlp.mnst"], "Did you mean: bp_mlp.mnist"),
    (["--init", "fa_mlp.mnist"], "continues only from its own checkpoints"),
    (["--limit", "0"], "--limit must be a positive number of images, got 0"),
    (["--device", "tpu"], "unknown device 'tpu'; accepted: auto, cpu, cuda, cuda:N, mps"),
    (["--device", "cuda:7"], "is not available"),
    (["--set", "nosuch.key=1"], "no section 'nosuch'"),
    (["--test-limit", "-3"], "--test-limit must be a positive number of images, got -3"),
])
def test_bad_command_lines_get_one_clear_error(argv, message, tmp_path, data_root, capsys) -> None:
    assert main(["bp_mlp", "--dataset", "fashion_mnist", "--epochs", "1", "--data-root", str(data_root),
                 "--out", str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_init_from_a_pending_checkpoint_is_refused(tiny_zoo, tmp_path, data_root, capsys) -> None:
    assert main(["bp_mlp", "--dataset", "fashion_mnist", "--pending", "Not trained yet.",
                 "--manifest", str(tiny_zoo.manifest)]) == 0
    assert main(["bp_mlp", "--dataset", "fashion_mnist", "--epochs", "1", "--data-root", str(data_root),
                 "--out", str(tmp_path / "x"), "--init", "bp_mlp.fashion_mnist"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --init bp_mlp.fashion_mnist: that checkpoint is pending") and err.count("\n") == 1


def test_log_without_a_terminal_is_one_line_per_epoch(tmp_path, data_root) -> None:
    process = train_cli("bp_mlp", "--dataset", "mnist", "--epochs", "2", "--limit", "500", "--test-limit", "500",
                        "--data-root",
                        str(data_root), "--out", str(tmp_path / "log"))
    log = process.communicate()[0]
    assert process.returncode == 0, log
    assert "\r" not in log
    assert [line.split()[1] for line in log.splitlines() if " epoch " in line] == ["epoch", "epoch"]


def test_publish_keeps_the_manifest_mode_and_refuses_departures_and_dirty_code(tmp_path, tiny_zoo, data_root) -> None:
    out = tmp_path / "run"
    assert main(["bp_mlp", "--dataset", "mnist", "--epochs", "1", "--limit", "300", "--data-root", str(data_root),
                 "--out", str(out), "--no-progress"]) == 0  # the full test split: verify recomputes its top-1
    with pytest.raises(PublishError, match="departs from its recipe"):
        publish_run(out, tiny_zoo.manifest)
    raw = run_entry(out)
    del raw["recipe"]["departures"]
    raw["recipe"]["git_commit"] = "0" * 40 + "-dirty+abc"
    (out / "entry.json").write_text(json.dumps(raw))
    with pytest.raises(PublishError, match="uncommitted code"):
        publish_run(out, tiny_zoo.manifest)
    raw["recipe"]["git_commit"] = "0" * 40
    (out / "entry.json").write_text(json.dumps(raw))
    os.chmod(tiny_zoo.manifest, 0o644)
    entry = publish_run(out, tiny_zoo.manifest)
    assert oct(tiny_zoo.manifest.stat().st_mode & 0o777) == "0o644"
    assert read_manifest(tiny_zoo.manifest).entries[entry.id].sha256 == entry.sha256
    assert all(check.ok for check in verify_entry(entry, data_root)), "verify must agree with what training wrote"


def test_random_shift_moves_whole_images() -> None:
    x = torch.zeros(2, 1, 6, 6)
    x[:, 0, 2, 3] = 1.0
    shifted = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape
    assert torch.equal(shifted.sum((1, 2, 3)), torch.ones(2))


def test_crop_flip_mirrors_about_half_the_images() -> None:
    x = torch.zeros(1000, 1, 4, 4)
    x[:, 0, 1, 0] = 1.0  # one lit pixel in the left column
    out = augment(x, FitConfig(epochs=1, augment="crop_flip", max_shift=0), torch.Generator().manual_seed(0))
    mirrored = out[:, 0, 1, 3] == 1.0
    assert torch.equal(out.sum((1, 2, 3)), torch.ones(1000))
    assert 400 < int(mirrored.sum()) < 600
    assert torch.equal(out[~mirrored], x[~mirrored])


def test_krotov_layer_continues_unsupervised_from_a_published_checkpoint(tmp_path, data_root) -> None:
    """``--init krotov_fc.mnist`` with fewer epochs than the recipe's Hebbian phase: the published Hebbian weights
    are the starting point, the local rule moves them, they stay at its fixed point (p-norm 1) and the published
    head still reads the continued features."""
    out = tmp_path / "continued"
    published = zoo.load("krotov_fc.mnist")
    with pytest.warns(UserWarning, match="head is not trained"):
        assert main(["krotov_fc", "--dataset", "mnist", "--epochs", "1", "--limit", "1000", "--test-limit", "2000",
                     "--init",
                     "krotov_fc.mnist", "--data-root", str(data_root), "--out", str(out), "--no-progress"]) == 0
    entry = read_manifest_entry(out)
    continued = load_into(get_family("krotov_fc").build_model(entry.arch), checkpoint_of(out))
    before, after = published.hebbian.weight, continued.hebbian.weight
    assert not torch.equal(before, after), "the Hebbian layer must keep learning"
    assert torch.equal(published.head.weight, continued.head.weight), "an all-Hebbian run leaves the head alone"
    p_norms = after.abs().pow(3.0).sum(1)
    assert (p_norms.median() - 1.0).abs() < 0.05
    assert entry.metrics["top1"] > 95.0 and entry.metrics["n_eval"] == 2000
