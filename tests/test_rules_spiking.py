"""The spiking families (zoo/rules/spiking.py): LIF dynamics and readout as documented, the spike-rate metric,
the NIR round trip (export, snnTorch's importer, same logits), the missing-extra message and refused options."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("snntorch")
pytest.importorskip("nirtorch")
nir = pytest.importorskip("nir")

from publishing import publish_test_model  # noqa: E402

from zoo.errors import ManifestError, MissingExtraError  # noqa: E402
from zoo.evaluation.evaluate import full_metrics, spike_rate  # noqa: E402
from zoo.registry import families, get_family  # noqa: E402
from zoo.rules.spiking import SpikingMLP, export_nir, run_nir  # noqa: E402
from zoo.weights.manifest import Entry, published_entry  # noqa: E402

SPIKING = ("snn_mlp", "snn_lenet")


def one_neuron(current: float, time_steps: int = 4, beta: float = 0.5, threshold: float = 1.0) -> SpikingMLP:
    """A network with one LIF neuron whose input current is ``current`` for an image of ones, read out with weight 1."""
    model = SpikingMLP((1, 1, 1), 1, [0.0], [1.0], hidden=[1], time_steps=time_steps, beta=beta,
                       threshold=threshold)
    with torch.no_grad():
        model.hidden[0].weight.fill_(current)
        model.hidden[0].bias.zero_()
        model.head.weight.fill_(1.0)
        model.head.bias.zero_()
    return model.eval()


def test_the_lif_neuron_integrates_leaks_fires_and_resets_to_zero() -> None:
    """U_t = 0.5 U_{t-1} + 0.6: 0.6, 0.9, 1.05 (spike, reset to 0), 0.6: one spike in four steps, so the readout (the
    mean output current) is 1/4; a current of 1.2 fires at every step."""
    x = torch.ones(1, 1, 1, 1)
    assert one_neuron(0.6).count_spikes(x) == (1.0, 1)
    assert one_neuron(0.6)(x).item() == pytest.approx(0.25)
    assert one_neuron(1.2)(x).item() == pytest.approx(1.0)
    assert one_neuron(0.6, beta=0.0)(x).item() == 0.0  # no memory: 0.6 never reaches the threshold
    assert one_neuron(0.6, threshold=0.5)(x).item() == pytest.approx(1.0)
    assert one_neuron(0.6, time_steps=2)(x).item() == 0.0


def test_the_encoding_and_time_steps_are_part_of_the_architecture() -> None:
    for name in SPIKING:
        family = get_family(name)
        arch = family.arch_for("mnist")
        assert (arch["time_steps"], arch["beta"], arch["threshold"]) == (4, 0.5, 1.0)
        assert family.learning_rule == "surrogate_gradient_bptt" and family.architecture in ("mlp", "lenet")
        assert family.alignment is None  # the exact gradient of a spiking net is zero almost everywhere
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    family = get_family("snn_lenet")
    torch.manual_seed(0)
    four = family.build_model(family.arch_for("mnist")).eval()
    torch.manual_seed(0)
    one = family.build_model(family.arch_for("mnist", time_steps=1)).eval()
    assert torch.equal(four.state_dict()["conv1.weight"], one.state_dict()["conv1.weight"])
    assert not torch.allclose(four(x), one(x))


def test_surrogate_gradient_training_fits_a_batch() -> None:
    """Backpropagation through time with the surrogate gradient learns: 30 Adam steps fit 40 random labels."""
    family = get_family("snn_mlp")
    torch.manual_seed(0)
    model = family.build_model(family.arch_for("mnist", hidden=[64])).train()
    trainer = family.trainer(model, {"lr": 3e-3, "schedule": "constant"}, steps_per_epoch=30, epochs=1)
    x, y = torch.rand(40, 1, 28, 28), torch.arange(40) % 10
    losses = [trainer.step(x, y) for _ in range(30)]
    assert losses[-1] < 0.3 * losses[0]
    assert (model.eval()(x).argmax(1) == y).float().mean() >= 0.9


def test_spike_rate_is_mean_spikes_per_neuron_per_image() -> None:
    x = torch.ones(5, 1, 1, 1)
    assert spike_rate(one_neuron(0.6), x, torch.zeros(5, dtype=torch.long), batch_size=2) == 1.0
    assert spike_rate(one_neuron(1.2), x, torch.zeros(5, dtype=torch.long)) == 4.0
    family = get_family("snn_mlp")
    model = family.build_model(family.arch_for("mnist", hidden=[16, 8]))
    images, labels = torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8), torch.arange(20) % 10
    spikes, neurons = model.count_spikes(images.float() / 255)
    assert neurons == 24
    metrics = full_metrics(model, images, labels, "mnist")
    assert metrics["spike_rate"] == pytest.approx(spikes / (24 * 20), abs=1e-6)
    plain = get_family("bp_mlp")
    assert "spike_rate" not in full_metrics(plain.build_model(plain.arch_for("mnist", hidden=[8])), images, labels,
                                            "mnist", gradients=False)


def test_the_manifest_checks_the_spike_rate() -> None:
    family = get_family("snn_mlp")
    metrics = {"top1": 98.0, "n_eval": 10, "top1_noise": {"0.1": 90.0, "0.2": 80.0, "0.3": 70.0}, "spike_rate": 0.5}
    recipe = {"command": "c", "config": {}, "seed": 0, "epochs": 1, "wall_time_s": 1.0, "hardware": "h",
              "torch_version": "t", "git_commit": "g"}
    entry = published_entry("snn_mlp", "mnist", family.learning_rule, family.arch_for("mnist"), recipe,
                            sha256="0" * 64, size_bytes=1, num_params=1, metrics=metrics)
    template = entry.to_dict()
    assert Entry.from_dict(template).metrics["spike_rate"] == 0.5
    for bad in (-0.1, "0.5", True, float("inf")):
        with pytest.raises(ManifestError, match="metrics.spike_rate' must be a non-negative number"):
            Entry.from_dict({**template, "metrics": {**template["metrics"], "spike_rate": bad}})


@pytest.mark.parametrize(("name", "dataset"), [("snn_mlp", "mnist"), ("snn_lenet", "mnist"),
                                               ("snn_lenet", "cifar10")])
def test_nir_round_trip_gives_the_same_logits(name: str, dataset: str, tmp_path: Path) -> None:
    """Export with snnTorch's exporter, read the file back, import it with snnTorch's importer and run it for
    ``time_steps`` steps: the same logits as the zoo model (whose input normalisation the graph has folded in)."""
    family = get_family(name)
    torch.manual_seed(0)
    model = family.build_model(family.arch_for(dataset, time_steps=3)).eval()
    x = torch.rand(6, *family.arch_for(dataset)["in_shape"], generator=torch.Generator().manual_seed(2))
    path = export_nir(model, tmp_path / "model.nir")
    graph = nir.read(path)
    kinds = {type(node).__name__ for node in graph.nodes.values()}
    expected = {"Input", "Affine", "LIF", "Output"} | ({"Conv2d", "SumPool2d", "Flatten"} if name == "snn_lenet"
                                                        else {"Flatten"})
    assert kinds == expected
    assert int(graph.metadata["time_steps"]) == 3 and float(graph.metadata["dt"]) == 1e-4
    for node in graph.nodes.values():  # the forward-Euler step of dt: v = 0.5 v + 0.5 I, reset to zero
        if isinstance(node, nir.LIF):
            assert np.all(1 - np.float32(graph.metadata["dt"]) / node.tau == 0.5) and np.all(node.r == 1.0)
            assert np.all(node.v_leak == 0) and np.all(node.v_reset == 0) and np.all(node.v_threshold == 1.0)
    logits = model(x)
    assert model.count_spikes(x)[0] > 0  # spikes happen, so the comparison covers the neurons
    assert torch.allclose(run_nir(path, x), logits, atol=1e-5)
    assert not torch.allclose(run_nir(path, x, time_steps=1), logits, atol=1e-3)


def _publish_snn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, nn.Module]:
    """A small untrained snn_mlp published through the training code path into a manifest of its own."""
    family = get_family("snn_mlp")
    arch = family.arch_for("mnist", hidden=[16, 8])
    torch.manual_seed(0)
    model = family.build_model(arch).eval()
    images, labels = torch.randint(0, 256, (30, 1, 28, 28), dtype=torch.uint8), torch.arange(30) % 10
    metrics = full_metrics(model, images, labels, "mnist")
    return publish_test_model(tmp_path, monkeypatch, "snn_mlp", "mnist", arch, model, metrics).id, model


def test_export_nir_command_writes_the_published_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from zoo.api import get_entry
    from zoo.cli import main

    model_id, model = _publish_snn(tmp_path, monkeypatch)
    assert get_entry(model_id).metrics["spike_rate"] >= 0
    out = tmp_path / "exported.nir"
    assert main(["export-nir", model_id, str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert nir.read(out).metadata["source"] in (b"bioplausible-zoo snn_mlp.mnist", "bioplausible-zoo snn_mlp.mnist")
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(run_nir(out, x), model(x), atol=1e-5)


def test_fine_tuning_starts_from_a_published_spiking_checkpoint(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``--init``: the run's model holds the published weights and LIF parameters, and trains on from there."""
    from training.train import initial_model

    model_id, published = _publish_snn(tmp_path, monkeypatch)
    family = get_family("snn_mlp")
    torch.manual_seed(1)
    model = initial_model(family, family.arch_for("mnist", hidden=[16, 8]), model_id)
    for key, value in published.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    trainer = family.trainer(model.train(), {}, steps_per_epoch=1, epochs=1)
    trainer.step(torch.rand(10, 1, 28, 28), torch.arange(10))
    assert not torch.equal(model.state_dict()["hidden.0.weight"], published.state_dict()["hidden.0.weight"])
    assert torch.equal(model.state_dict()["lif.0.beta"], published.state_dict()["lif.0.beta"])


def test_export_nir_refuses_a_network_that_is_not_spiking(tmp_path: Path, tiny_zoo: Any,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from zoo.cli import main

    assert main(["export-nir", tiny_zoo.model_id, str(tmp_path / "x.nir")]) == 2
    assert "MLP is not a spiking zoo model; NIR export takes the spiking families" in capsys.readouterr().err
    assert not (tmp_path / "x.nir").exists()


def test_without_snntorch_the_zoo_works_and_an_snn_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "snntorch", None)  # the optional extra is missing
    assert set(SPIKING) <= set(families())  # the registry lists the spiking families without importing snnTorch
    plain = get_family("bp_lenet")
    assert plain.build_model(plain.arch_for("mnist"))(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    for name in SPIKING:
        family = get_family(name)
        with pytest.raises(MissingExtraError, match=r"the spiking families \(snn_mlp, snn_lenet\) needs snntorch, an "
                                                    r"optional extra: pip install snntorch \(or pip install "
                                                    r"'bioplausible-zoo\[snn\]'"):
            family.build_model(family.arch_for("mnist"))


def test_export_without_nir_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    family = get_family("snn_mlp")
    model = family.build_model(family.arch_for("mnist", hidden=[4]))
    monkeypatch.setitem(sys.modules, "nir", None)
    with pytest.raises(MissingExtraError, match=r"NIR export and import needs nir, an optional extra: pip install "
                                                r"nir \(or pip install 'bioplausible-zoo\[snn\]'"):
        export_nir(model, tmp_path / "m.nir")


@pytest.mark.parametrize(("options", "message"), [
    ({"time_steps": 0}, r"snn_mlp: architecture option time_steps=0 is not valid; accepted: a positive integer"),
    ({"time_steps": 2.5}, r"time_steps=2.5 is not valid; accepted: a positive integer"),
    ({"beta": 1.0}, r"beta \(membrane decay per step\) must be a number in \[0, 1\), got 1.0"),
    ({"beta": -0.1}, r"beta .* must be a number in \[0, 1\), got -0.1"),
    ({"threshold": 0}, r"threshold must be a positive number, got 0"),
    ({"hidden": []}, r"hidden must be a non-empty list of positive layer widths, got \[\]"),
    ({"dropout": 0.2}, r"snn_mlp: unknown architecture option\(s\) \['dropout'\]; accepted: \['beta', 'hidden', "
                       r"'threshold', 'time_steps'\]"),
])
def test_bad_options_are_refused_naming_what_is_accepted(options: dict[str, Any], message: str) -> None:
    family = get_family("snn_mlp")
    with pytest.raises(ValueError, match=message):
        family.build_model(family.arch_for("mnist", **options))
