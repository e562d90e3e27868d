"""The contract every generated family keeps, run for each family the registry holds (and so for every family a
new rule or architecture module adds): it builds for each of its datasets, returns float logits of the right
shape, round-trips through a checkpoint, runs plain layers in eval mode, trains what its rule trains (and nothing
else) in one step, and has a recipe and a manifest entry for each dataset."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from plugin_sources import TINYNET_ARCH, scaled_rule
from torch import nn

import zoo.archs
from training.recipes import effective_config, load_recipe
from zoo.api import manifest
from zoo.engine.local_phase import HebbianPhaseTrainer
from zoo.registry import Family, ModelCfg, architectures, families, family_of, rules
from zoo.rules.base import RuleLayer, give_labels, true_gradients
from zoo.rules.softhebb import SoftHebbTrainer
from zoo.weights.checkpoint import build_loaded, load_into, save_checkpoint

CASES = [(name, dataset) for name, family in families().items() for dataset in family.datasets]


def build(family: Family, dataset: str, seed: int = 0, **arch: object) -> nn.Module:
    torch.manual_seed(seed)
    return family.build_model(family.arch_for(dataset, **arch), dataset=dataset)


def batch(family: Family, dataset: str, n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    shape = family.arch_for(dataset)["in_shape"]
    generator = torch.Generator().manual_seed(1)
    return torch.rand(n, *shape, generator=generator), torch.arange(n) % 10


@pytest.mark.parametrize(("name", "dataset"), CASES)
def test_builds_and_returns_float_logits(name: str, dataset: str) -> None:
    family = families()[name]
    model = build(family, dataset).eval()
    x, _ = batch(family, dataset)
    logits = model(x)
    assert logits.shape == (len(x), 10) and logits.dtype == torch.float32
    assert model.zoo_cfg == ModelCfg(family=name, arch=family.arch_for(dataset), dataset=dataset)
    assert family_of(model) is family


@pytest.mark.parametrize(("name", "dataset"), CASES)
def test_checkpoint_round_trip(name: str, dataset: str, tmp_path: Path) -> None:
    family = families()[name]
    model, other = build(family, dataset, seed=0).eval(), build(family, dataset, seed=1).eval()
    x, _ = batch(family, dataset)
    assert not torch.equal(model(x), other(x))
    path = save_checkpoint(model, tmp_path / "m.safetensors", entrypoint=name, arch=family.arch_for(dataset))
    load_into(other, path)
    assert torch.equal(model(x), other(x))
    for key, value in model.state_dict().items():  # feedback matrices and every buffer travel too
        assert torch.equal(value, other.state_dict()[key]), key
    rng = torch.random.get_rng_state()
    built = build_loaded(lambda: family.build_model(family.arch_for(dataset), dataset=dataset), path).eval()
    assert torch.equal(torch.random.get_rng_state(), rng)  # no random initialisation drawn and thrown away
    assert torch.equal(model(x), built(x))
    assert {k: v.dtype for k, v in model.named_buffers()} == {k: v.dtype for k, v in built.named_buffers()}
    for key, value in model.named_buffers():  # the buffers no checkpoint holds are rebuilt, not left empty
        assert torch.equal(value, dict(built.named_buffers())[key]), key
    assert [(k, p.requires_grad) for k, p in model.named_parameters()] == \
        [(k, p.requires_grad) for k, p in built.named_parameters()]


@pytest.mark.parametrize(("name", "dataset"), CASES)
def test_eval_mode_gives_the_true_input_gradient(name: str, dataset: str) -> None:
    """In eval mode every rule layer is a plain layer: the input gradient equals the true one (computed with the
    rule switched off), while in training mode the rule's own backward pass (where the family has one) differs.
    Batch norm stays on its running statistics throughout, so that train and eval mode compute the same function."""
    family = families()[name]
    no_dropout = {"dropout": 0.0} if "dropout" in family.default_arch else {}
    model = build(family, dataset, **no_dropout)
    x, y = batch(family, dataset)

    def input_gradient(training: bool) -> torch.Tensor:
        model.train(training)
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        xi = x.clone().requires_grad_(True)
        nn.functional.cross_entropy(model(xi), y).backward()
        model.zero_grad(set_to_none=True)
        assert xi.grad is not None
        return xi.grad

    with true_gradients():
        exact = input_gradient(training=True)
    assert torch.allclose(input_gradient(training=False), exact, rtol=1e-5, atol=1e-8)
    if any(isinstance(m, RuleLayer) for m in model.modules()):
        give_labels(model, y)  # DRTP's layers need the batch's target (no-op for the other rules)
        assert not torch.allclose(input_gradient(training=True), exact, rtol=1e-3, atol=1e-6)


def expected_changes(model: nn.Module, trainer: object) -> set[str]:
    """The tensors a first training step must change: the Hebbian layer alone (plus the head where it trains
    during the Hebbian epochs) for a Hebbian rule, the first block for SoftHebb's layer-greedy training, every
    trainable parameter for the others."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if isinstance(trainer, HebbianPhaseTrainer):
        return {"hebbian.weight"} | (trainable if trainer.head_during_hebbian else set())
    if isinstance(trainer, SoftHebbTrainer):  # layer-greedy: the first block's kernels and batch-norm statistics
        return {key for key in model.state_dict() if key.startswith("blocks.0.")}
    running = {f"{name}.{key}" for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
               for key in ("running_mean", "running_var", "num_batches_tracked")}
    return trainable | running


@pytest.mark.parametrize("name", sorted(families()))
def test_one_step_trains_what_the_rule_trains_and_nothing_else(name: str) -> None:
    family = families()[name]
    dataset = family.datasets[0]
    recipe = effective_config(name, dataset, load_recipe(name, dataset))  # every option, checked by the trainer
    model = build(family, dataset).train()
    trainer = family.trainer(model, recipe["fit"]["rule"], steps_per_epoch=1, epochs=recipe["fit"]["epochs"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = batch(family, dataset, n=20)
    loss = trainer.step(x, y)
    assert torch.isfinite(torch.tensor(loss))
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == expected_changes(model, trainer)


@pytest.mark.parametrize(("name", "dataset"), CASES)
def test_recipe_and_manifest_entry_exist(name: str, dataset: str) -> None:
    family = families()[name]
    recipe = load_recipe(name, dataset)
    family.arch_for(dataset, **recipe["arch"])  # the recipe's architecture keys are the family's
    entry = manifest().entries[f"{name}.{dataset}"]
    assert (entry.entrypoint, entry.dataset, entry.learning_rule) == (name, dataset, family.learning_rule)


def test_a_typo_in_a_rule_option_is_refused() -> None:
    family = families()["fa_mlp"]
    model = build(family, "mnist")
    with pytest.raises(ValueError, match=r"unknown rule option\(s\) \['lr_decay'\]; accepted: .*'lr'"):
        family.trainer(model, {"lr_decay": 0.1}, steps_per_epoch=1, epochs=1)


def test_a_new_architecture_module_gives_every_layer_rule_a_family(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding an architecture is one module: every rule with a layer kit (and no list of its own) trains it."""
    (tmp_path / "tinynet.py").write_text(TINYNET_ARCH)
    monkeypatch.setattr(zoo.archs, "__path__", [*zoo.archs.__path__, str(tmp_path)])
    from zoo import registry

    registry.rediscover()
    try:
        new = {n for n in families() if n.endswith("_tinynet")}
        layer_rules = {r.name for r in rules().values() if r.layers is not None and r.architectures is None}
        assert new == {f"{r}_tinynet" for r in layer_rules} and {"bp_tinynet", "fa_tinynet", "dfa_tinynet"} <= new
        for name in sorted(new):
            family = families()[name]
            model = family.build_model(family.arch_for("mnist", width=3)).train()
            x, y = torch.rand(4, 1, 28, 28), torch.arange(4)
            family.trainer(model, {}, steps_per_epoch=1, epochs=1).step(x, y)
            assert model(x).shape == (4, 10)
    finally:
        monkeypatch.undo()
        sys.modules.pop("zoo.archs.tinynet", None)
        registry.rediscover()


def test_a_new_rule_module_gets_a_family_for_every_architecture(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding a rule is one module: a rule with a layer kit trains every architecture, with its options recorded."""
    import zoo.rules
    from zoo import registry

    (tmp_path / "scaled.py").write_text(scaled_rule())
    monkeypatch.setattr(zoo.rules, "__path__", [*zoo.rules.__path__, str(tmp_path)])
    registry.rediscover()
    try:
        new = {n: f for n, f in families().items() if f.rule == "scaled"}
        assert set(new) == {f"scaled_{a}" for a in architectures()}
        family = new["scaled_mlp"]
        assert family.default_arch["scale"] == 0.5 and family.summary.startswith("Two-hidden-layer MLP trained with")
        model = family.build_model(family.arch_for("mnist", hidden=[8], scale=0.0))
        assert model.hidden[0].weight.abs().sum() == 0  # the rule's option reached its layers
        assert "scale" not in dict(model.named_parameters()) and model.zoo_cfg.arch["scale"] == 0.0
    finally:
        monkeypatch.undo()
        sys.modules.pop("zoo.rules.scaled", None)
        registry.rediscover()


def plain_twin(module: nn.Module) -> nn.Module:
    """A plain ``nn.Conv2d`` / ``nn.Linear`` of the same shape as ``module`` with its weights negated: what a layer
    converter, quantiser or LoRA injection puts in a layer's place, made to compute something else."""
    if isinstance(module, nn.Conv2d):
        twin: nn.Module = nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, stride=module.stride,
                                    padding=module.padding, bias=module.bias is not None)
    else:
        assert isinstance(module, nn.Linear)
        twin = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
    with torch.no_grad():
        twin.weight.copy_(-module.weight)
        if module.bias is not None:
            twin.bias.copy_(module.bias)
    return twin


@pytest.mark.parametrize("name", sorted(families()))
def test_a_layer_swapped_by_name_is_the_one_forward_calls(name: str) -> None:
    """Issue 30: a network keeps no side list of its layers, so replacing a registered conv or linear layer by name
    (``setattr(parent, child, new)``) changes what the model computes."""
    family = families()[name]
    dataset = family.datasets[0]
    x, _ = batch(family, dataset)
    swapped = 0
    for kind in (nn.Conv2d, nn.Linear):
        model = build(family, dataset).eval()
        found = next((path for path, m in model.named_modules() if isinstance(m, kind)), None)
        if found is None:
            continue
        before = model(x)
        parent_path, _, child = found.rpartition(".")
        setattr(model.get_submodule(parent_path), child, plain_twin(model.get_submodule(found)))
        assert not torch.equal(model(x), before), f"{name}: swapping {found} did not change the output"
        swapped += 1
    assert swapped, f"{name} has neither a conv nor a linear layer to swap"


def one_family_per_rule_and_architecture() -> list[str]:
    """A sample covering every non-spiking learning rule and every architecture."""
    chosen: dict[str, str] = {}
    for name, family in families().items():
        if family.learning_rule != "surrogate_gradient_bptt":
            chosen.setdefault(family.learning_rule, name)
            chosen.setdefault(f"arch:{family.architecture}", name)
    return sorted(set(chosen.values()))


@pytest.mark.parametrize("name", one_family_per_rule_and_architecture())
def test_eval_forward_compiles_to_one_graph(name: str) -> None:
    """Issue 30: ``torch.compile`` traces the eval forward without a graph break (the input check stays out of the
    traced path); in eager mode the check still runs."""
    family = families()[name]
    dataset = family.datasets[0]
    model = build(family, dataset).eval()
    x, _ = batch(family, dataset, n=2)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(x)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    with pytest.raises(ValueError, match="NaN or infinite"):
        model(torch.full_like(x, float("nan")))


@pytest.mark.parametrize("name", ["bp_lenet", "fa_cnn", "dfa_resnet20"])
def test_conv_nets_infer_in_channels_last_with_the_same_predictions(name: str) -> None:
    """Issue 30: eval-mode conv nets hand their convolutions channels-last images (faster on the CPU); the logits are
    those of the default layout to float rounding, and training mode leaves the layout to the training loop."""
    family = families()[name]
    dataset = family.datasets[-1]
    model = build(family, dataset).eval()
    x, _ = batch(family, dataset, n=8)
    assert model.input.channels_last and model.input(x).is_contiguous(memory_format=torch.channels_last)
    fast = model(x)
    model.input.channels_last = False
    assert torch.allclose(fast, model(x), rtol=1e-4, atol=1e-5)
    model.input.channels_last = True
    assert model.train().input(x).is_contiguous()
