"""Spiking neural networks of leaky integrate-and-fire (LIF) neurons, trained with surrogate gradients through
time (Neftci, Mostafa & Zenke 2019), built on snnTorch (Eshraghian et al. 2023), an optional extra.

Neuron (snnTorch's ``Leaky`` with reset to zero, the form NIR's LIF node describes), at each step ``t`` of ``T``:

    U_t = beta * U_{t-1} + I_t,      S_t = H(U_t - theta),      U_t <- U_t * (1 - S_t)

with ``I_t`` the input current of the layer (its weights applied to the spikes of the layer below), ``beta`` the
membrane decay per step and ``theta`` the threshold (architecture options ``beta`` and ``threshold``, recorded in
the manifest; the same for every neuron).

Encoding: direct input (Rathi & Roy 2021; Wu et al. 2019): the normalised image is the input of the first layer at
every one of the ``time_steps`` steps, so the first synaptic layer runs once per image. Rate or latency coding needs
tens to hundreds of steps to carry an image; direct encoding reaches MNIST accuracy in 4 to 8, which keeps a CPU
epoch a few times a non-spiking one.

Readout: the logits are the mean over the ``T`` steps of the output layer's input current,
``logits = (1/T) sum_t (W_out S_t + b_out)``, i.e. the membrane of a non-spiking, non-leaky integrator divided by
``T``: a graded readout without the ties of spike counts over few steps.

Training (:class:`~zoo.engine.trainer.GradientTrainer`): cross-entropy of the readout, backpropagated through the
``T`` steps (BPTT); the step function ``H`` has its gradient replaced by snnTorch's arctangent surrogate
(Fang et al. 2021), ``dS/dU = (alpha/2) / (1 + (pi alpha (U - theta) / 2)^2)`` with ``alpha = 2``. The reset is
part of the graph as snnTorch computes it.

The networks are variants that follow an architecture (``Variant.extends``), not a layer kit: a spiking network is
not the architecture with other layer types but the architecture run for ``T`` steps with neuron state carried
between them, read out over time, and pooled in a way NIR can express (average, not LeNet's max), none of which
an architecture's single forward pass lets a kit supply. The conv family follows ``lenet`` rather than ``cnn``:
LeNet is made for MNIST, Fashion-MNIST and CIFAR-10 alike (``cnn`` for CIFAR-10 only), and its 20 and 50 maps keep
``T`` steps per image affordable on two CPU cores.

Every weight of a spiking model receives the surrogate gradient, so there is no alignment angle to record: the
exact gradient of a spiking network is zero almost everywhere (``H`` is a step), and the surrogate gradient
compared with itself would be 0 degrees by construction.

:func:`export_nir` writes a model as a Neuromorphic Intermediate Representation graph (NIR; Pedersen et al. 2024)
through snnTorch's exporter: one time step of the network, to be run ``time_steps`` times on the image, averaging
the output. NIR's LIF node is a differential equation, ``tau dv/dt = (v_leak - v) + r I``; the neuron above is its
forward-Euler step of ``dt`` (:data:`NIR_DT`) with ``tau = dt / (1 - beta)``, ``r = 1``, ``v_leak = 0``,
``v_reset = 0`` and the weights into the neurons multiplied by ``1 / (1 - beta)`` to undo the step's input gain
``dt / tau`` (Norse's importer and Sinabs' normalised-input LIF take ``r = 1``; snnTorch's importer moves that gain
into its threshold). The graph's metadata states the step, the discretisation, the spike and reset semantics, the
encoding and the readout (:data:`NIR_RULES`): an importer that reads ``tau`` in steps, fires several spikes per step
or subtracts the threshold on a spike runs another network. Pooling is written as NIR's ``SumPool2d`` with the
``1/4`` of the average folded into the convolution before it, which more simulators import than ``AvgPool2d``; both
foldings are exact for the zoo's ``beta = 0.5`` and 2x2 windows (powers of two). :func:`run_nir` runs such a file
through snnTorch's importer.
"""
from __future__ import annotations

import contextlib
import copy
import io
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from zoo.archs.image_input import ImageInput
from zoo.archs.lenet import ARCHITECTURE as LENET_ARCHITECTURE
from zoo.archs.lenet import LeNet
from zoo.archs.mlp import ARCHITECTURE as MLP_ARCHITECTURE
from zoo.engine.trainer import GradientTrainer
from zoo.evaluation.extras import optional_import, require
from zoo.rules.base import Rule, Variant

LIF_OPTIONS: dict[str, Any] = {"time_steps": 4, "beta": 0.5, "threshold": 1.0}
POOL = (2, 2)  # average pooling (max-pooling has no NIR node); a tuple, as snnTorch's NIR importer needs
FAMILIES = "the spiking families (snn_mlp, snn_lenet)"
NIR_PACKAGES = ("snntorch", "nir", "nirtorch")  # snnTorch's NIR exporter and importer run on nirtorch
NIR_PURPOSE = "NIR export and import"
NIR_DT = 1e-4  # seconds per time step in an exported NIR graph (snnTorch's NIR exporter and importer assume it)
#: How an exported NIR graph is to be run, written into its metadata (``{beta}``, ``{gain}`` ``= 1 - beta`` and
#: ``{threshold}`` filled in).
NIR_RULES = {
    "discretisation": "forward Euler, one step of dt per time step: v[t] = v[t-1] + (dt / tau) (v_leak - v[t-1] + "
                      "r I[t]), with this graph's values (dt / tau = {gain}, r = 1, v_leak = 0) v[t] = {beta} v[t-1] "
                      "+ {gain} I[t]; within a step the nodes run in graph order, each on the output of the one before "
                      "in the same step (no delay)",
    "spikes": "z[t] = 1 where v[t] > v_threshold ({threshold}), else 0: at most one spike per neuron and step, of "
              "amplitude 1",
    "reset": "to v_reset (0) in the step of the spike: v[t] = v_reset where z[t] = 1",
    "encoding": "direct: the image, values in [0, 1], is the input at every time step",
    "readout": "logits: the output averaged over the time_steps steps",
}


def snntorch() -> ModuleType:
    """snnTorch, or :class:`~zoo.errors.MissingExtraError` saying how to install it."""
    return optional_import("snntorch", FAMILIES, "snntorch", extra="snn")


def check_lif_options(time_steps: Any, beta: Any, threshold: Any) -> None:
    """Refuse LIF options that make no network: ``time_steps`` a positive integer, ``beta`` in ``[0, 1)``, a
    positive ``threshold``."""
    if isinstance(time_steps, bool) or not isinstance(time_steps, int) or time_steps < 1:
        raise ValueError(f"time_steps must be a positive integer (steps per image), got {time_steps!r}")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= beta < 1.0:
        raise ValueError(f"beta (membrane decay per step) must be a number in [0, 1), got {beta!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold > 0:
        raise ValueError(f"threshold must be a positive number, got {threshold!r}")


def _apply(ops: Sequence[nn.Module], h: Tensor) -> Tensor:
    for op in ops:
        h = op(h)
    return h


class SpikingNetwork(nn.Module):
    """Layers of LIF neurons, each fed by its synaptic operations (:meth:`stages`), and a linear readout ``head``.

    ``forward(x)`` takes float images ``[N, C, H, W]`` in ``[0, 1]`` and returns the readout logits (module doc);
    :meth:`count_spikes` gives the spikes the neurons emitted. Subclasses build ``self.lif`` (one snnTorch
    ``Leaky`` per stage, made by :meth:`neuron`), the synaptic layers and ``self.head``.
    """

    lif: nn.ModuleList
    head: nn.Linear

    def __init__(self, in_shape: Sequence[int], mean: Sequence[float], std: Sequence[float], time_steps: int,
                 beta: float, threshold: float) -> None:
        super().__init__()
        check_lif_options(time_steps, beta, threshold)
        self.input = ImageInput(in_shape, mean, std)
        self.time_steps, self.beta, self.threshold = time_steps, float(beta), float(threshold)

    def neuron(self, init_hidden: bool = False, shape: Sequence[int] = ()) -> nn.Module:
        """A layer of LIF neurons with this network's ``beta`` and ``threshold`` (per neuron when ``shape`` is
        given), reset to zero without delay, the form snnTorch's NIR importer rebuilds. snnTorch reads its own
        tensors while it builds a neuron, so a meta-device build (:func:`zoo.weights.checkpoint.build_loaded`) makes
        the neurons' few constants on the CPU."""
        default = torch.get_default_device()
        with torch.device("cpu" if default.type == "meta" else default):
            return snntorch().Leaky(beta=torch.full(tuple(shape), self.beta), threshold=torch.full(
                tuple(shape), self.threshold), reset_mechanism="zero", reset_delay=False, init_hidden=init_hidden)

    @torch.no_grad()
    def init_weights(self) -> None:
        """He (Kaiming) uniform weights, ``U(-sqrt(6 / fan_in), sqrt(6 / fan_in))``, for every layer that feeds
        neurons: binary spikes at rate ``r`` then give currents of standard deviation ``sqrt(2 r)``, enough to reach
        the threshold, where PyTorch's default (``sqrt(6)`` times smaller: ``sqrt(r / 3)``) leaves the layers after
        the first nearly silent (measured on MNIST test images: LeNet's second and third LIF layers emit 0.003 and 0
        spikes per neuron per image at T=4, against 0.28 and 0.07 with this initialisation)."""
        for ops in self.stages():
            for op in ops:
                if isinstance(op, (nn.Linear, nn.Conv2d)):
                    nn.init.kaiming_uniform_(op.weight, nonlinearity="relu")

    def clear_membranes(self, device: torch.device) -> None:
        """Empty each LIF layer's ``mem`` buffer (snnTorch's, not in checkpoints), as its constructor leaves it."""
        for neuron in self.lif:
            neuron.mem = torch.zeros(0, device=device)

    def rebuild_buffers(self) -> None:
        """Remake the LIF layers' ``mem`` buffers on the CPU after a meta-device build
        (:func:`zoo.weights.checkpoint.build_loaded`)."""
        self.clear_membranes(torch.device("cpu"))

    def stages(self) -> list[list[nn.Module]]:
        """For each LIF layer, the operations that turn the layer below (the normalised image for the first)
        into its input current."""
        raise NotImplementedError

    def simulate(self, x: Tensor, count: bool = False) -> tuple[Tensor, list[Tensor]]:
        """The logits for images ``x`` and, with ``count``, the spikes of each LIF layer per image (``[N]`` each,
        summed over neurons and steps)."""
        stages = self.stages()
        first = _apply(stages[0], self.input(x))  # direct encoding: the same current at every step
        membranes: list[Tensor | None] = [None] * len(stages)
        spikes = [first.new_zeros(len(x)) for _ in stages] if count else []
        total: Tensor | None = None
        for _ in range(self.time_steps):
            h = first
            for index, (ops, neuron) in enumerate(zip(stages, self.lif)):
                h = _apply(ops, h) if index else h
                membrane = membranes[index]
                h, membranes[index] = neuron(h, torch.zeros_like(h) if membrane is None else membrane)
                if count:
                    spikes[index] += h.detach().flatten(1).sum(1)
            total = h if total is None else total + h
        self.clear_membranes(first.device)  # snnTorch keeps every neuron in a global list: drop the batch's state
        assert total is not None
        return self.head(total / self.time_steps), spikes

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes]`` for float images ``[N, C, H, W]`` in ``[0, 1]``."""
        return self.simulate(x)[0]

    def neuron_shapes(self) -> list[tuple[int, ...]]:
        """The shape of each LIF layer for one image."""
        h = torch.zeros(1, *self.input.in_shape, device=self.head.weight.device)
        shapes = []
        with torch.no_grad():
            for ops in self.stages():
                h = _apply(ops, h)
                shapes.append(tuple(h.shape[1:]))
        return shapes

    def count_spikes(self, x: Tensor) -> tuple[float, int]:
        """Spikes the images ``x`` caused, summed over images, neurons and steps, and the number of LIF neurons
        (for :func:`zoo.evaluation.evaluate.spike_rate`)."""
        _, spikes = self.simulate(x, count=True)
        neurons = sum(int(torch.Size(shape).numel()) for shape in self.neuron_shapes())
        return float(sum(float(s.sum()) for s in spikes)), neurons

    def step_network(self) -> nn.Sequential:
        """One time step of the network as an ``nn.Sequential`` of plain layers and snnTorch neurons that keep their
        own state (``init_hidden``), the form snnTorch's NIR exporter reads: the input normalisation is folded into
        the first layer (exact: it is affine and unpadded), neurons carry per-neuron parameters (NIR types each
        node by their shape), and the readout is the head's current (averaged over the steps by the caller)."""
        modules: list[nn.Module] = []
        for index, (ops, shape) in enumerate(zip(self.stages(), self.neuron_shapes())):
            ops = [copy.deepcopy(op) for op in ops]
            if index == 0:
                fold_normalisation(next(op for op in ops if isinstance(op, (nn.Linear, nn.Conv2d))), self.input)
            modules += [*ops, self.neuron(init_hidden=True, shape=shape)]
        return nn.Sequential(*modules, copy.deepcopy(self.head)).to(self.head.weight.device).eval()


@torch.no_grad()
def fold_normalisation(layer: nn.Linear | nn.Conv2d, image_input: ImageInput) -> None:
    """Make ``layer`` (the first, applied to the image: a Linear on the flattened image or an unpadded conv) take
    images in ``[0, 1]``: ``layer((x - mean) / std) = layer'(x)`` with the weights divided by each input channel's
    ``std`` and the bias set to ``layer((0 - mean) / std)``."""
    flat = isinstance(layer, nn.Linear)
    scale = 1.0 / image_input.std.flatten()
    blank = image_input(torch.zeros(1, *image_input.in_shape, device=scale.device))  # the normalised black image
    response = layer(blank.flatten(1)) if flat else layer(blank)[..., 0, 0]  # an unpadded conv: the same everywhere
    weight = layer.weight
    if flat:
        weight.copy_((weight.view(weight.shape[0], len(scale), -1) * scale.view(1, -1, 1)).view_as(weight))
    else:
        weight.mul_(scale.view(1, -1, 1, 1))
    assert layer.bias is not None
    layer.bias.copy_(response.flatten())


class SpikingMLP(SpikingNetwork):
    """The zoo's MLP (``hidden`` widths) with a LIF layer after every hidden linear layer: ``input -> [linear ->
    LIF] * len(hidden) -> linear readout``, run for ``time_steps`` steps (modules ``hidden.i``, ``lif.i``,
    ``head``)."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, mean: Sequence[float], std: Sequence[float],
                 hidden: Sequence[int] = tuple(MLP_ARCHITECTURE.options["hidden"]),
                 time_steps: int = LIF_OPTIONS["time_steps"], beta: float = LIF_OPTIONS["beta"],
                 threshold: float = LIF_OPTIONS["threshold"]) -> None:
        super().__init__(in_shape, mean, std, time_steps, beta, threshold)
        if not hidden or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in hidden):
            raise ValueError(f"hidden must be a non-empty list of positive layer widths, got {hidden!r}")
        widths = [int(torch.Size(self.input.in_shape).numel()), *hidden]
        self.flatten = nn.Flatten()
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.lif = nn.ModuleList(self.neuron() for _ in hidden)
        self.head = nn.Linear(widths[-1], num_classes)
        self.init_weights()

    def stages(self) -> list[list[nn.Module]]:
        return [[self.flatten, self.hidden[0]], *([layer] for layer in self.hidden[1:])]


class SpikingLeNet(SpikingNetwork):
    """The zoo's LeNet (two 5x5 convolutions with 20 and 50 maps, 500 hidden units) with LIF neurons:
    ``input -> [conv -> avg-pool 2 -> LIF] x 2 -> flatten -> linear 500 -> LIF -> linear readout``, run for
    ``time_steps`` steps (modules ``conv1``, ``conv2``, ``fc``, ``lif.i``, ``head``). Pooling averages the
    currents before the neurons (LeNet's max-pool has no NIR node), so every layer passes on binary spikes."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, mean: Sequence[float], std: Sequence[float],
                 time_steps: int = LIF_OPTIONS["time_steps"], beta: float = LIF_OPTIONS["beta"],
                 threshold: float = LIF_OPTIONS["threshold"]) -> None:
        super().__init__(in_shape, mean, std, time_steps, beta, threshold)
        shapes = LeNet.shapes(self.input.in_shape)
        for index, out_channels in enumerate(LeNet.channels):
            self.add_module(f"conv{index + 1}", nn.Conv2d(shapes[f"conv{index + 1}"][0], out_channels,
                                                          LeNet.kernel_size))
        self.pool = nn.AvgPool2d(POOL, stride=POOL)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(shapes["fc"][0], LeNet.fc_width)
        self.lif = nn.ModuleList(self.neuron() for _ in range(len(LeNet.channels) + 1))
        self.head = nn.Linear(LeNet.fc_width, num_classes)
        self.init_weights()

    @property
    def convs(self) -> list[nn.Module]:
        """The convolutions as registered now (``conv1``, ``conv2``): a module swapped in by name is the one used."""
        return [getattr(self, f"conv{index + 1}") for index in range(len(LeNet.channels))]

    def stages(self) -> list[list[nn.Module]]:
        convs = [[conv, self.pool] if pooled else [conv] for conv, pooled in zip(self.convs, LeNet.pooled)]
        return [*convs, [self.flatten, self.fc]]


def _spiking_model(model: nn.Module) -> SpikingNetwork:
    if not isinstance(model, SpikingNetwork):
        raise TypeError(f"{type(model).__name__} is not a spiking zoo model; NIR export takes the spiking families "
                        "(snn_mlp, snn_lenet)")
    return model


def require_nir() -> None:
    """:class:`~zoo.errors.MissingExtraError` unless :data:`NIR_PACKAGES` are installed: what to check before
    fetching a checkpoint to export."""
    require(NIR_PURPOSE, *NIR_PACKAGES)


def _nir_modules() -> tuple[ModuleType, ModuleType, ModuleType]:
    """``nir``, snnTorch's NIR exporter and importer (they need ``nirtorch``)."""
    require_nir()
    return (optional_import("nir", NIR_PURPOSE, "nir", extra="snn"),
            optional_import("snntorch.export_nir", NIR_PURPOSE, "snntorch", extra="snn"),
            optional_import("snntorch.import_nir", NIR_PURPOSE, "snntorch", extra="snn"))


def export_nir(model: nn.Module, path: Path | str) -> Path:
    """Write a spiking zoo model to ``path`` as a NIR graph (HDF5) with snnTorch's exporter and return the path.

    The graph is one time step (input: one image ``[C, H, W]`` in ``[0, 1]``, no batch dimension); its metadata
    gives ``time_steps``, the step ``dt`` (seconds) and how to run it (:data:`NIR_RULES`): present the image at each
    step, step the neurons by forward Euler (one spike per step at most, reset to zero) and average the output over
    the steps. LIF nodes have ``r = 1`` and average pooling is a sum pool (module doc).
    """
    network = _spiking_model(model)
    nir, exporter, _ = _nir_modules()
    sample = torch.zeros(1, *network.input.in_shape, device=network.head.weight.device)
    with warnings.catch_warnings():  # snnTorch 1.0 calls nirtorch's older tracer, which warns of its own successor
        warnings.filterwarnings("ignore", "nirtorch.extract_nir_graph is being deprecated", DeprecationWarning)
        graph = exporter.export_to_nir(network.step_network(), sample, ignore_dims=[0])
    gain = 1.0 - network.beta  # dt / tau: the input gain of the Euler step with r = 1
    for key, node in list(graph.nodes.items()):
        if isinstance(node, nir.LIF):
            _scale_source(nir, graph, key, 1.0 / gain)
            shape = node.v_threshold.shape
            graph.nodes[key] = nir.LIF(tau=_full(shape, NIR_DT / gain), r=_full(shape, 1.0), v_leak=_full(shape, 0.0),
                                       v_threshold=_full(shape, network.threshold), v_reset=_full(shape, 0.0))
        elif isinstance(node, nir.AvgPool2d):
            _scale_source(nir, graph, key, 1.0 / float(np.prod(node.kernel_size)))
            graph.nodes[key] = nir.SumPool2d(kernel_size=node.kernel_size, stride=node.stride, padding=node.padding)
    cfg = getattr(model, "zoo_cfg", None)
    graph.metadata = {
        "time_steps": network.time_steps,
        "dt": NIR_DT,
        **{name: rule.format(beta=network.beta, gain=gain, threshold=network.threshold)
           for name, rule in NIR_RULES.items()},
        "source": f"bioplausible-zoo {cfg.id or cfg.family}" if cfg is not None else "bioplausible-zoo",
    }
    path = Path(path)
    nir.write(path, graph)
    return path


def _full(shape: tuple[int, ...], value: float) -> np.ndarray:
    """A float32 array of ``shape`` holding ``value``: one parameter of a NIR node, per neuron."""
    return np.full(shape, value, dtype=np.float32)


def _scale_source(nir: ModuleType, graph: Any, key: str, factor: float) -> None:
    """Multiply the weights and bias of the ``Affine`` or ``Conv2d`` node that feeds node ``key`` (through pooling
    nodes, which are linear) by ``factor``."""
    source = key
    while True:
        sources = [a for a, b in graph.edges if b == source]
        node = graph.nodes[sources[0]] if len(sources) == 1 else None
        if not isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
            break
        source = sources[0]
    if not isinstance(node, (nir.Affine, nir.Conv2d)):
        raise ValueError(f"NIR export folds scales into the layer before node {key}, found {type(node).__name__}")
    node.weight = np.asarray(node.weight, dtype=np.float32) * np.float32(factor)
    node.bias = np.asarray(node.bias, dtype=np.float32) * np.float32(factor)


@torch.no_grad()
def run_nir(path: Path | str, images: Tensor, time_steps: int | None = None) -> Tensor:
    """Logits ``[N, classes]`` of the NIR graph in ``path`` (from :func:`export_nir`) on images ``[N, C, H, W]`` in
    ``[0, 1]``, imported with snnTorch's NIR importer and run image by image for ``time_steps`` steps (default:
    the graph's metadata)."""
    nir, _, importer = _nir_modules()
    graph = nir.read(Path(path))
    steps = int(graph.metadata["time_steps"]) if time_steps is None else time_steps
    with contextlib.redirect_stdout(io.StringIO()):  # it prints that it moves the input gain into the threshold
        network = importer.import_from_nir(graph)
    utils = optional_import("snntorch.utils", "running a NIR graph", "snntorch", extra="snn")
    logits = []
    for image in images.to(torch.float32):
        utils.reset(network)
        logits.append(sum(network(image)[0] for _ in range(steps)) / steps)
    return torch.stack(logits)


_SUMMARY = ("spiking {what} of leaky integrate-and-fire neurons (snnTorch; direct input encoding, mean output "
            "current over time_steps steps as logits) trained with surrogate-gradient backpropagation through time.")

RULES = (
    Rule(
        name="snn",
        learning_rule="surrogate_gradient_bptt",
        description="as a spiking network of LIF neurons trained with surrogate-gradient backpropagation through "
                    "time.",
        trainer=GradientTrainer,
        paper="Neftci, Mostafa & Zenke, Surrogate gradient learning in spiking neural networks (IEEE Signal "
              "Processing Magazine 2019); Eshraghian et al., Training spiking neural networks using lessons from "
              "deep learning (Proc. IEEE 2023)",
        variants={
            "mlp": Variant(summary="Two-hidden-layer " + _SUMMARY.format(what="MLP"), build=SpikingMLP,
                           options={"hidden": list(MLP_ARCHITECTURE.options["hidden"]), **LIF_OPTIONS},
                           extends=MLP_ARCHITECTURE.name),
            "lenet": Variant(summary="LeNet-5-size " + _SUMMARY.format(what="conv net (20-50 maps, 500 hidden "
                                                                              "units, average pooling)"),
                             build=SpikingLeNet, options=dict(LIF_OPTIONS), extends=LENET_ARCHITECTURE.name),
        },
    ),
)
