"""Resolving and loading checkpoints: checkout, cache, URL download, Hugging Face Hub, offline mode."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

import zoo
from zoo.errors import DownloadError, HashMismatchError, OfflineError, WeightsPendingError, ZooError
from zoo.weights.hub_layout import export_folder
from zoo.weights.resolve import cached_file, resolve_file


def same_model(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    return torch.equal(a(x), b(x))


def test_checkout_file_loads_in_eval_mode(tiny_zoo) -> None:
    model = zoo.load(tiny_zoo.model_id)
    assert not model.training
    assert same_model(model, tiny_zoo.model)
    assert zoo.list_models() == [tiny_zoo.model_id]
    assert zoo.get_weights(tiny_zoo.model_id).meta["sha256"] == tiny_zoo.sha256


def corrupt(path: Path) -> bytes:
    """Flip the last byte of ``path``; return the original bytes."""
    good = path.read_bytes()
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    return good


def test_corrupted_checkout_file_names_file_and_hashes(tiny_zoo) -> None:
    corrupt(tiny_zoo.checkpoint)
    with pytest.raises(HashMismatchError) as info:
        zoo.load(tiny_zoo.model_id, source="local")
    message = str(info.value)
    assert str(tiny_zoo.checkpoint) in message and tiny_zoo.sha256 in message and info.value.actual in message


def test_auto_skips_a_corrupted_copy_and_repairs_the_cache(tiny_zoo, file_server, monkeypatch) -> None:
    good = corrupt(tiny_zoo.checkpoint)
    server = file_server({tiny_zoo.checkpoint.name: good})
    monkeypatch.setenv("ZOO_WEIGHTS_URL", server.base_url)
    entry = zoo.get_weights(tiny_zoo.model_id).entry
    cached_file(entry).parent.mkdir(parents=True)
    cached_file(entry).write_bytes(good[:100])  # a truncated cache file
    with pytest.warns(UserWarning) as caught:
        model = zoo.load(tiny_zoo.model_id)
    assert same_model(model, tiny_zoo.model)
    messages = [str(w.message) for w in caught]
    assert any(str(tiny_zoo.checkpoint) in m and "corrupted local copy" in m for m in messages)
    assert any(str(cached_file(entry)) in m and "corrupted cache copy" in m for m in messages)
    assert cached_file(entry).read_bytes() == good, "the bad cache file is replaced by the verified download"


def test_every_source_failing_lists_what_each_gave(tiny_zoo, file_server, hub_server, monkeypatch) -> None:
    server, _ = move_to_server(tiny_zoo, file_server)
    monkeypatch.setenv("ZOO_WEIGHTS_URL", server.base_url + "/nothing-here")
    monkeypatch.setenv("HF_ENDPOINT", hub_server({}).endpoint)
    with pytest.raises(DownloadError) as info:
        zoo.load(tiny_zoo.model_id)
    lines = str(info.value).splitlines()
    for source in ("local: no checkpoint at", "cache: no checkpoint at", "url: HTTP 404", "hf: "):
        assert any(line.strip().startswith(source) for line in lines), (source, lines)


def test_unwritable_cache_is_one_line_and_the_chain_goes_on(tiny_zoo, file_server, hub_server, tmp_path,
                                                           monkeypatch) -> None:
    server, _ = move_to_server(tiny_zoo, file_server)
    monkeypatch.setenv("ZOO_WEIGHTS_URL", server.base_url)
    monkeypatch.setenv("HF_ENDPOINT", hub_server({}).endpoint)
    blocked = tmp_path / "torch-home-is-a-file"
    blocked.write_text("")  # no folder can be made below it, whoever runs the test (root ignores chmod)
    monkeypatch.setenv("TORCH_HOME", str(blocked))
    with pytest.raises(DownloadError) as info:
        zoo.load(tiny_zoo.model_id)
    url_line = next(line for line in str(info.value).splitlines() if line.strip().startswith("url:"))
    assert f"cannot write the cache folder {blocked / 'hub' / 'checkpoints'}" in url_line and "TORCH_HOME" in url_line
    assert any(line.strip().startswith("hf:") for line in str(info.value).splitlines()), "the chain goes on"


def move_to_server(tiny_zoo, file_server):
    """Take the checkpoint out of the checkout and serve it over HTTP instead."""
    data = tiny_zoo.checkpoint.read_bytes()
    tiny_zoo.checkpoint.unlink()
    server = file_server({tiny_zoo.checkpoint.name: data})
    return server, data


def test_url_download_goes_to_torch_hub_cache_once(tiny_zoo, file_server, monkeypatch) -> None:
    server, data = move_to_server(tiny_zoo, file_server)
    monkeypatch.setenv("ZOO_WEIGHTS_URL", server.base_url)
    model = zoo.load(tiny_zoo.model_id)
    assert same_model(model, tiny_zoo.model)
    entry = zoo.get_weights(tiny_zoo.model_id).entry
    assert cached_file(entry).read_bytes() == data
    assert str(cached_file(entry)).startswith(str(Path(torch.hub.get_dir())))
    hits = len(server.requests)
    zoo.load(tiny_zoo.model_id)
    assert len(server.requests) == hits, "a cached, verified file must not be downloaded again"


def test_corrupted_cache_is_detected_every_time(tiny_zoo, file_server, monkeypatch) -> None:
    server, _ = move_to_server(tiny_zoo, file_server)
    monkeypatch.setenv("ZOO_WEIGHTS_URL", server.base_url)
    path = resolve_file(zoo.get_weights(tiny_zoo.model_id).entry)
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    with pytest.raises(HashMismatchError, match=str(path)):
        zoo.load(tiny_zoo.model_id, source="cache")
    with pytest.warns(UserWarning, match=f"corrupted cache copy {path}"):
        zoo.load(tiny_zoo.model_id)  # auto: detected again, skipped, replaced by a verified download


def test_wrong_bytes_from_server_leave_nothing_in_cache(tiny_zoo, file_server, monkeypatch) -> None:
    server, data = move_to_server(tiny_zoo, file_server)
    server.set_file(tiny_zoo.checkpoint.name, data[:-1] + b"\0")
    monkeypatch.setenv("ZOO_WEIGHTS_URL", server.base_url)
    with pytest.raises(HashMismatchError):
        zoo.load(tiny_zoo.model_id, source="url")
    cache = cached_file(zoo.get_weights(tiny_zoo.model_id).entry).parent
    left = [p.name for p in cache.iterdir()] if cache.exists() else []
    assert [name for name in left if not name.endswith(".lock")] == [], left


def hub_repo(tiny_zoo, tmp_path) -> dict[str, dict[str, bytes]]:
    folder = export_folder(tiny_zoo.model_id, tmp_path / "export")
    repo_id = zoo.get_weights(tiny_zoo.model_id).entry.hf["repo_id"]
    return {repo_id: {p.name: p.read_bytes() for p in folder.iterdir()}}


def test_export_hf_folder_layout(tiny_zoo, tmp_path) -> None:
    folder = export_folder(tiny_zoo.model_id, tmp_path / "export")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["entrypoint"] == "bp_mlp" and config["sha256"] == tiny_zoo.sha256
    card = (folder / "README.md").read_text()
    front = card.split("---")[1]
    for key in ("library_name: bioplausible-zoo", "license: mit", "datasets:", "tags:", "- backprop",
                "model-index:", "type: accuracy"):
        assert key in front, key
    assert "## Recipe" in card and "python -m training.train bp_mlp" in card


def test_load_from_hub_reads_the_exported_layout(tiny_zoo, hub_server, tmp_path, monkeypatch) -> None:
    repos = hub_repo(tiny_zoo, tmp_path)
    server = hub_server(repos)
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    model = zoo.load(tiny_zoo.model_id, source="hf")
    assert same_model(model, tiny_zoo.model) and not model.training
    assert any("config.json" in r for r in server.requests)
    repo_id = next(iter(repos))
    assert same_model(zoo.from_hub(repo_id), tiny_zoo.model)


@pytest.mark.parametrize("field, value", [("arch", "mean"), ("entrypoint", "fa_mlp"), ("sha256", "0" * 64)])
def test_hub_config_must_agree_with_the_manifest(field, value, tiny_zoo, hub_server, tmp_path, monkeypatch) -> None:
    """A Hub config that silently changed the normalisation (or names another model or file) is refused, by
    ``zoo.load(source="hf")`` and ``zoo.from_hub`` alike, with the field it disagrees on."""
    repos = hub_repo(tiny_zoo, tmp_path)
    repo_id = next(iter(repos))
    config = json.loads(repos[repo_id]["config.json"])
    if field == "arch":
        config["arch"] = {**config["arch"], "mean": [0.9], "std": [0.01]}
    else:
        config[field] = value
    repos[repo_id]["config.json"] = json.dumps(config).encode()
    monkeypatch.setenv("HF_ENDPOINT", hub_server(repos).endpoint)
    for load in (lambda: zoo.load(tiny_zoo.model_id, source="hf"), lambda: zoo.from_hub(repo_id)):
        with pytest.raises(ZooError, match=f"disagrees with the manifest entry of bp_mlp.mnist in field '{field}'"):
            load()


def test_auto_falls_back_from_broken_url_to_hub(tiny_zoo, file_server, hub_server, tmp_path, monkeypatch) -> None:
    repos = hub_repo(tiny_zoo, tmp_path)
    server, _ = move_to_server(tiny_zoo, file_server)
    server.set_fault(tiny_zoo.checkpoint.name, "500")
    hub = hub_server(repos)
    monkeypatch.setenv("ZOO_WEIGHTS_URL", server.base_url)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    assert same_model(zoo.load(tiny_zoo.model_id), tiny_zoo.model)
    assert server.requests and hub.requests


def test_hub_file_that_differs_from_manifest_is_refused(tiny_zoo, hub_server, tmp_path, monkeypatch) -> None:
    repos = hub_repo(tiny_zoo, tmp_path)
    repo_id = next(iter(repos))
    data = repos[repo_id]["model.safetensors"]
    repos[repo_id]["model.safetensors"] = data[:-1] + b"\0"
    monkeypatch.setenv("HF_ENDPOINT", hub_server(repos).endpoint)
    with pytest.raises(HashMismatchError):
        zoo.load(tiny_zoo.model_id, source="hf")


def test_offline_uses_cache_without_requests(tiny_zoo, file_server, monkeypatch) -> None:
    server, _ = move_to_server(tiny_zoo, file_server)
    monkeypatch.setenv("ZOO_WEIGHTS_URL", server.base_url)
    zoo.load(tiny_zoo.model_id)
    hits = len(server.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert same_model(zoo.load(tiny_zoo.model_id), tiny_zoo.model)
    assert len(server.requests) == hits


def test_offline_without_cache_fails_fast_and_says_what_to_download(tiny_zoo, file_server, monkeypatch) -> None:
    server, _ = move_to_server(tiny_zoo, file_server)
    monkeypatch.setenv("ZOO_WEIGHTS_URL", server.base_url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match=f"python -m zoo download {tiny_zoo.model_id}"):
        zoo.load(tiny_zoo.model_id)
    assert server.requests == []


def test_no_network_at_all_gives_one_clear_error(tiny_zoo, file_server, monkeypatch) -> None:
    server, _ = move_to_server(tiny_zoo, file_server)
    server.close()
    monkeypatch.setenv("ZOO_WEIGHTS_URL", server.base_url)
    monkeypatch.setenv("HF_ENDPOINT", server.base_url)
    with pytest.raises(DownloadError, match="python -m zoo download") as info:
        zoo.load(tiny_zoo.model_id)
    hub_line = next(line for line in str(info.value).splitlines() if line.strip().startswith("hf:"))
    assert f"the endpoint {server.base_url} cannot be reached" in hub_line and "connect timeout" in hub_line, \
        "the zoo's own connect check answers, not huggingface_hub's ~25 s of retries"


def test_load_onto_a_device(tiny_zoo) -> None:
    model = zoo.load(tiny_zoo.model_id, device="cpu")
    assert all(p.device.type == "cpu" for p in model.parameters())
    with pytest.raises(ValueError, match="device 'cuda:3' is not available"):
        zoo.load(tiny_zoo.model_id, device="cuda:3")
    with pytest.raises(ValueError, match="unknown device 'gpu'; accepted: auto, cpu, cuda, cuda:N, mps"):
        zoo.load(tiny_zoo.model_id, device="gpu")


def test_pending_entry_explains_itself(tiny_zoo) -> None:
    from training.train import main

    assert main(["bp_mlp", "--dataset", "cifar10", "--pending", "No CIFAR-10 data on the build machines.",
                 "--manifest", str(tiny_zoo.manifest)]) == 0
    with pytest.raises(WeightsPendingError,
                       match="No CIFAR-10 data.*python -m training.train bp_mlp --dataset cifar10"):
        zoo.load("bp_mlp.cifar10")
    assert "bp_mlp.cifar10" not in zoo.list_models()
    assert "bp_mlp.cifar10" in zoo.list_models(include_pending=True)


def test_copy_of_checkout_keeps_working(tiny_zoo, tmp_path, monkeypatch) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_zoo.root, copy)
    monkeypatch.setenv("ZOO_MANIFEST", str(copy / "weights_manifest.json"))
    assert same_model(zoo.load(tiny_zoo.model_id), tiny_zoo.model)


def test_exported_card_embeds_the_checkpoints_own_figures(tmp_path) -> None:
    """A checkpoint with a learning curve and an attack comparison: both as tables in the card, and as pictures
    beside it when matplotlib is there."""
    pytest.importorskip("matplotlib")
    entry = zoo.get_weights("fa_mlp.cifar10").entry
    folder = export_folder(entry.id, tmp_path / "export")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "attacks.png", "config.json",
                                                        "learning_curve.png", "model.safetensors"]
    card = (folder / "README.md").read_text()
    pgd = entry.metrics["robustness"]["top1_pgd"]["rule_gradient"]
    assert "| PGD | rule_gradient | " + " | ".join(f"{v:.1f}%" for v in pgd.values()) + " |" in card
    last = entry.recipe["curve"][-1]
    assert f"| {last['epoch']} | {last['train_loss']:.4f} | {last['test_top1']:.2f}% |" in card
    assert "![learning curve of the training run](learning_curve.png)" in card and "(attacks.png)" in card
    for layer, angle in entry.metrics["alignment_deg"].items():
        assert f"| `{layer}` | {angle:.1f} |" in card


@pytest.mark.parametrize(("command", "blocked", "package"), [
    (["export-nir", "{id}", "{tmp}/model.nir"], ("nir",), "nir"),
    (["compare", "{id}", "--out", "{tmp}/compare", "--images", "10"], ("rsatoolbox", "rsatoolbox.rdm"), "rsatoolbox"),
    (["explain", "{id}", "--out", "{tmp}/explain"], ("captum", "captum.attr"), "captum"),
    (["show-filters", "{id}", "--out", "{tmp}/filters.png"], ("matplotlib", "matplotlib.pyplot"), "matplotlib"),
])
def test_a_missing_extra_is_reported_before_the_checkpoint_is_downloaded(
        command: list[str], blocked: tuple[str, ...], package: str, tiny_zoo, file_server, monkeypatch, tmp_path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """As in an installed package (the checkpoint only at its URL): the command says which extra to install and
    has made no request and written nothing."""
    from zoo.cli import main

    server, _ = move_to_server(tiny_zoo, file_server)
    monkeypatch.setenv("ZOO_WEIGHTS_URL", server.base_url)
    for module in blocked:
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError, as when it is not installed
    out = tmp_path / "out"
    assert main([part.format(id=tiny_zoo.model_id, tmp=out) for part in command]) == 2
    assert f"pip install {package} " in capsys.readouterr().err
    assert server.requests == [] and not out.exists()
    assert not cached_file(zoo.get_weights(tiny_zoo.model_id).entry).exists()


def test_a_settled_verified_file_is_not_hashed_again_until_it_changes(tmp_path) -> None:
    """Issue 30: zoo.load does not re-hash a file it verified unchanged (size, mtime, inode), and a changed file is
    hashed again and refused if wrong."""
    import os

    from zoo.errors import HashMismatchError
    from zoo.weights.paths import zoo_cache_home
    from zoo.weights.resolve import checkout_file
    from zoo.weights.verified import RECORD_NAME, check_verified

    entry = zoo.get_weights("bp_mlp.mnist").entry
    path = tmp_path / "copy.safetensors"
    path.write_bytes(checkout_file(entry).read_bytes())
    old = os.stat(path).st_mtime_ns - 3_600 * 10**9
    os.utime(path, ns=(old, old))
    assert check_verified(path, str(entry.sha256)) == path
    assert str(path.resolve()) in (zoo_cache_home() / RECORD_NAME).read_text()
    with open(path, "r+b") as f:  # damage the bytes but keep size and times: the record is trusted
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 0xFF]))
    os.utime(path, ns=(old, old))
    assert check_verified(path, str(entry.sha256)) == path
    os.utime(path, ns=(old + 10**9, old + 10**9))  # any change of the metadata: hashed again, refused
    with pytest.raises(HashMismatchError):
        check_verified(path, str(entry.sha256))
    fresh = tmp_path / "fresh.safetensors"
    fresh.write_bytes(checkout_file(entry).read_bytes())
    check_verified(fresh, str(entry.sha256))
    assert str(fresh.resolve()) not in (zoo_cache_home() / RECORD_NAME).read_text(), "a fresh file is not recorded"
