"""Model contract: input checks, transforms, checkpoints, registry and id errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.data.transforms import ToFloatImages
from zoo.errors import UnknownModelError
from zoo.registry import get_family
from zoo.weights.checkpoint import build_loaded, load_into, read_metadata, save_checkpoint


def small_mlp(**arch: object) -> torch.nn.Module:
    family = get_family("bp_mlp")
    return family.build_model(family.arch_for("mnist", hidden=[16, 8], **arch))


@pytest.mark.parametrize("bad", [torch.zeros(2, 28, 28), torch.zeros(2, 3, 28, 28), torch.zeros(2, 1, 32, 32),
                                 torch.zeros(2, 1, 28, 28, dtype=torch.uint8)])
def test_wrong_input_names_expected_shape(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"\[N, 1, 28, 28\]"):
        small_mlp().eval()(bad)


def test_model_normalises_inside() -> None:
    model = small_mlp().eval()
    x = torch.rand(3, 1, 28, 28)
    expected = model.head(torch.relu(model.hidden[1](torch.relu(model.hidden[0](((x - 0.1307) / 0.3081).flatten(1))))))
    torch.testing.assert_close(model(x), expected)


def test_transforms_accept_common_layouts() -> None:
    to_float = ToFloatImages((1, 28, 28))
    images = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8)
    out = to_float(images)
    assert out.shape == (4, 1, 28, 28) and out.dtype == torch.float32
    torch.testing.assert_close(out[:, 0], images.float() / 255)
    torch.testing.assert_close(to_float(images.numpy()), out)
    torch.testing.assert_close(to_float(images[0]), out[:1])
    rgb = ToFloatImages((3, 32, 32))
    hwc = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    chw = rgb(hwc)
    assert chw.shape == (2, 3, 32, 32)
    assert chw[1, 2, 5, 7] == pytest.approx(hwc[1, 5, 7, 2] / 255)
    with pytest.raises(ValueError, match=r"\[N, 1, 28, 28\]"):
        to_float(torch.zeros(2, 27, 27, dtype=torch.uint8))


def test_checkpoint_bytes_are_reproducible(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = small_mlp()
    arch = {"hidden": [16, 8]}
    a = save_checkpoint(model, tmp_path / "a.safetensors", entrypoint="bp_mlp", arch=arch)
    b = save_checkpoint(model, tmp_path / "b.safetensors", entrypoint="bp_mlp", arch=arch)
    assert a.read_bytes() == b.read_bytes()
    assert read_metadata(a) == {"format_version": "1", "entrypoint": "bp_mlp", "arch": arch}
    assert not list(tmp_path.glob("*.tmp"))
    clone = load_into(small_mlp(), a)
    for (name, x), (_, y) in zip(model.state_dict().items(), clone.state_dict().items()):
        assert torch.equal(x, y), name


def test_checkpoint_that_does_not_fit_is_explained(tmp_path: Path) -> None:
    path = save_checkpoint(small_mlp(), tmp_path / "a.safetensors", entrypoint="bp_mlp", arch={})
    family = get_family("bp_mlp")
    other = family.build_model(family.arch_for("mnist", hidden=[16, 4]))
    with pytest.raises(ValueError, match="wrong shapes"):
        load_into(other, path)


def test_a_built_model_fits_the_file_and_every_buffer_is_made(tmp_path: Path) -> None:
    path = save_checkpoint(small_mlp(), tmp_path / "a.safetensors", entrypoint="bp_mlp", arch={})
    family = get_family("bp_mlp")
    with pytest.raises(ValueError, match="wrong shapes"):
        build_loaded(lambda: family.build_model(family.arch_for("mnist", hidden=[16, 4])), path)

    class Unrebuilt(torch.nn.Module):  # a non-persistent buffer and no rebuild_buffers()
        def __init__(self) -> None:
            super().__init__()
            self.inner = small_mlp()
            self.register_buffer("scale", torch.ones(1), persistent=False)

    wrapped = save_checkpoint(Unrebuilt(), tmp_path / "w.safetensors", entrypoint="bp_mlp", arch={})
    with pytest.raises(RuntimeError, match=r"\['scale'\] unmade.*rebuild_buffers"):
        build_loaded(Unrebuilt, wrapped)


def test_load_builds_no_random_initialisation_to_throw_away(tiny_zoo) -> None:
    rng = torch.random.get_rng_state()
    model = zoo.load(tiny_zoo.model_id)
    assert torch.equal(torch.random.get_rng_state(), rng)
    for name, tensor in tiny_zoo.model.state_dict().items():
        assert torch.equal(tensor, model.state_dict()[name]), name


def test_unknown_ids_suggest_close_matches(tiny_zoo) -> None:
    with pytest.raises(UnknownModelError, match="bp_mlp.mnist"):
        zoo.load("bp_mlp.mnits")
    with pytest.raises(UnknownModelError, match="bp_mlp"):
        get_family("bp_mpl")
    with pytest.raises(ValueError, match="accepted"):
        get_family("bp_mlp").arch_for("mnist", widht=3)


def test_untrained_model_shapes() -> None:
    model = zoo.create_model("bp_mlp", weights=None, dataset="cifar10")
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    model = zoo.create_model("bp_mlp", weights=None, in_shape=(1, 8, 8), num_classes=3)
    assert model(torch.rand(5, 1, 8, 8)).shape == (5, 3)
    with pytest.raises(ValueError, match="dataset="):
        zoo.create_model("bp_mlp", weights=None)
    with pytest.raises(ValueError, match="weights=None"):
        zoo.create_model("bp_mlp", weights="mnist", dataset="mnist")


@pytest.mark.parametrize(("arch", "named", "accepted"), [
    ({"hidden": [-5]}, "hidden=[-5]", "accepted: a list of positive integers"),
    ({"hidden": 800}, "hidden=800", "accepted: a list of positive integers"),
    ({"dropout": 1.5}, "dropout=1.5", "accepted: a number in [0, 1)"),
    ({"num_classes": 0}, "num_classes=0", "accepted: an integer >= 2"),
    ({"num_classes": 2.5}, "num_classes=2.5", "accepted: an integer >= 2"),
    ({"in_shape": (1, 0, 28)}, "in_shape=(1, 0, 28)", "accepted: (C, H, W), three positive integers"),
])
def test_bad_architecture_values_name_what_is_accepted(arch: dict[str, object], named: str, accepted: str) -> None:
    with pytest.raises(ValueError) as e:
        zoo.create_model("fa_mlp", None, dataset="mnist", **arch)
    message = str(e.value)
    assert message.startswith(f"fa_mlp: {named} is not valid") or message.startswith(
        f"fa_mlp: architecture option {named} is not valid"), message
    assert accepted in message and "\n" not in message


def test_every_option_of_every_family_is_checked_before_building() -> None:
    """One rule for all families: a value of the wrong kind for any option is refused by name, before torch sees
    it (a string where a number or list is expected, a number where a string is)."""
    from zoo.registry import families

    for family in families().values():
        for key, default in family.default_arch.items():
            wrong = 7 if isinstance(default, str) else "seven"
            with pytest.raises(ValueError, match=rf"^{family.name}: architecture option {key}=.*accepted: "):
                family.arch_for(family.default_dataset, **{key: wrong})


def test_any_float_dtype_is_cast_and_other_dtypes_are_refused() -> None:
    import warnings

    import numpy as np

    model = zoo.create_model("bp_mlp", weights=None, dataset="mnist").eval()
    images = np.random.default_rng(0).random((3, 1, 28, 28))  # NumPy's default: float64
    reference = model(torch.from_numpy(images).to(torch.float32))
    assert torch.equal(model(torch.from_numpy(images)), reference)
    half = torch.from_numpy(images).to(torch.float16)
    assert torch.equal(model(half), model(half.to(torch.float32)))
    for bad in (torch.zeros(3, 1, 28, 28, dtype=torch.int32), torch.zeros(3, 1, 28, 28, dtype=torch.uint8)):
        with pytest.raises(ValueError, match="any float dtype.*transforms"):
            model(bad)
    with pytest.warns(UserWarning, match=r"scaled to \[0, 1\]"):
        model(torch.from_numpy(images * 255))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(torch.from_numpy(images * 255))  # warned once per model
