"""The Forward-Forward algorithm (FF): every layer learns on its own to give *positive* data (an image with its true
label embedded) a high goodness and *negative* data (the same image with a wrong label) a low one. No gradient
crosses a layer boundary.

Hinton, *The Forward-Forward Algorithm: Some Preliminary Investigations*, arXiv:2212.13345 (2022); the symmetric
loss is SymBa's (Lee & Song, arXiv:2303.08418, 2023).

Network (:class:`FFNet`), on the flattened, normalised image ``v`` (:class:`~zoo.archs.image_input.ImageInput`),
``C`` classes, label strength ``s`` (``label_scale``):

* label embedding ``e(v, k)`` (arch option ``label_embedding``): ``"append"`` concatenates ``s * onehot(k)`` after
  ``v`` (no value is lost, e.g. on CIFAR-10 whose first values are image); ``"overwrite"`` replaces the first ``C``
  values of ``v`` by it (Hinton's "first 10 pixels", in MNIST always background). ``v`` is standardised (values of
  about unit mean square, ``|v| ~ 28`` on MNIST), so Hinton's strength 1 on [0, 1] pixels does not carry over: with
  ``s = 1`` the label's share of a first-layer input is ~1/16 of the image's at initialisation, and a probe (threshold
  loss, full MNIST) stalled with every goodness at ``theta`` and 48.7 % after an epoch; ``s = 30`` makes the label
  about as long as the image;
* every layer's input is length-normalised, ``n(h) = h / sqrt(mean_j h_j^2 + eps)``, so only its direction passes
  on and a layer cannot read the goodness of the layer below;
* ``h_0 = e(v, k)``, ``h_l = relu(W_l n(h_{l-1}) + b_l)``; goodness ``g_l = sum_j h_{l,j}^2``.

Logits (``model(x)``; training and eval mode alike, no label is read): for every class ``k``,
``logit_k = sum_{l >= l_0} g_l(e(v, k)) / sum_{l >= l_0} width_l``, the goodness summed over the layers per unit
read (the mean squared activity), with ``l_0 = 2`` when ``skip_first`` (Hinton's choice: the first hidden layer sees
the label directly) and ``l_0 = 1`` otherwise. Here the first layer
is the most accurate one (MNIST, 3 x 1000 units, after 2 epochs: 96.6 % alone, layers 2-3 93.4 %, all 95.5 %), so
the default reads every layer. Summed over every unit, the goodness would make the softmax so sharp that
the cross-entropy's input gradient underflows to zero in float32 wherever an image's margin exceeds ~100 (8 % of the
test images after 2 epochs of a 2 x 500 probe net on 10k MNIST images), and a cross-entropy attack (FGSM, PGD) would
find no direction there; per unit, the ranking is the same and the gradient survives (the zoo's attacks refuse a
model no logit temperature rescues, :func:`zoo.evaluation.attacks.logit_temperature`). The ``C`` first-layer inputs
of an image differ only in the label values and share one norm, so they share one matrix product:
``W_1 n(e(v, k)) = (W_img v_img + s W_lab[:, k]) / rms(e(v, k))``.

Training (:class:`FFTrainer`), per batch ``(x, y)``:

1. negative labels ``y' != y`` (rule option ``negatives``): ``"hard"``, the most excited wrong label under the
   current model, ``y' = argmax_{k != y} logit_k`` (Hinton's hard negatives); ``"random"``, uniform over the wrong
   labels;
2. layer by layer on ``e(v, y)`` (positive) and ``e(v, y')`` (negative), each layer applied to the *detached*
   activity of the layer below, a logistic loss (:func:`ff_loss`, rule option ``loss``):

   * ``"symmetric"`` (default): ``L_l = mean_batch softplus(-alpha (g_l^+ - g_l^-))``, minus the log-probability
     ``sigmoid(alpha (g^+ - g^-))`` that the positive is the better of the pair;
   * ``"threshold"`` (Hinton's): ``L_l = mean_batch[softplus(-alpha (g_l^+ - theta_l)) +
     softplus(alpha (g_l^- - theta_l))]``, the logistic loss of ``p = sigmoid(alpha (g - theta))``, the probability
     that an input is positive, with ``theta_l = threshold * width_l`` (``threshold = 1``: Hinton's, the number of
     units).

   The threshold loss first spends its updates raising every goodness to ``theta`` (all gradients are on the
   positives while ``g << theta``); on 10k MNIST images, 3 x 500 units, 3 epochs, it reached 78 % where the
   symmetric loss reached 90-92 % (SymBa's observation). ``alpha = 0.1`` saturates a pair once its goodness differs
   by ~50, against ~5 for ``alpha = 1`` (91.6 % against 90.4 % in that probe);
3. each layer's parameters receive the gradient of their own ``L_l`` only, and Adam (or SGD) steps them. Both
   update each parameter from its own gradient alone, so one optimiser over all layers is one optimiser per layer.

FF descends no end-to-end loss and its updates do not approximate the gradient of the cross-entropy of these
logits, so the family has no alignment angle (``alignment=None``).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from zoo.archs.image_input import ImageInput
from zoo.archs.mlp import ARCHITECTURE as MLP_ARCHITECTURE
from zoo.engine.distributed import SINGLE, Collective
from zoo.engine.options import check_schedule, make_optimizer, schedule_factor
from zoo.engine.trainer import Trainer
from zoo.rules.base import Rule, Variant

PAPER = "Hinton, The Forward-Forward Algorithm: Some Preliminary Investigations (arXiv:2212.13345, 2022)"
LABEL_EMBEDDINGS = ("overwrite", "append")
NEGATIVES = ("hard", "random")
LOSSES = ("threshold", "symmetric")
NORM_EPS = 1e-12


def length_normalise(h: Tensor) -> Tensor:
    """``h / sqrt(mean(h^2) + eps)`` over the last dimension: unit mean square, so only the direction passes on."""
    return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + NORM_EPS)


def goodness(h: Tensor) -> Tensor:
    """The goodness of activities ``h``: the sum of their squares over the last dimension."""
    return h.pow(2).sum(-1)


def ff_loss(positive: Tensor, negative: Tensor, kind: str, alpha: float, theta: float) -> Tensor:
    """One layer's FF loss on the goodness of its positive and negative data, batch mean: ``"threshold"``,
    ``softplus(-alpha (g_pos - theta)) + softplus(alpha (g_neg - theta))``; ``"symmetric"``,
    ``softplus(-alpha (g_pos - g_neg))`` (``theta`` unused)."""
    if kind == "threshold":
        return (F.softplus(alpha * (theta - positive)) + F.softplus(alpha * (negative - theta))).mean()
    if kind == "symmetric":
        return F.softplus(alpha * (negative - positive)).mean()
    raise ValueError(f"unknown loss {kind!r}; accepted: {LOSSES}")


class FFNet(nn.Module):
    """Fully connected ReLU layers trained with Forward-Forward; ``forward`` returns every class's goodness (see the
    module doc). ``layers[l]`` is hidden layer ``l + 1``; there is no output layer."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, mean: Sequence[float], std: Sequence[float],
                 hidden: Sequence[int] = (800, 800), label_embedding: str = "append", label_scale: float = 30.0,
                 skip_first: bool = False) -> None:
        super().__init__()
        if label_embedding not in LABEL_EMBEDDINGS:
            raise ValueError(f"unknown label_embedding {label_embedding!r}; accepted: {LABEL_EMBEDDINGS}")
        widths = [int(w) for w in hidden]
        if not widths or min(widths) < 1:
            raise ValueError(f"hidden must list at least one positive layer width, got {list(hidden)}")
        if skip_first and len(widths) < 2:
            raise ValueError("skip_first=True leaves no layer to read the goodness from with one hidden layer; "
                             "give two or more hidden layers or skip_first=False")
        if not label_scale > 0:
            raise ValueError(f"label_scale must be positive, got {label_scale}")
        self.input = ImageInput(in_shape, mean, std)
        pixels = math.prod(self.input.in_shape)
        if label_embedding == "overwrite" and pixels < num_classes:
            raise ValueError(f"label_embedding 'overwrite' needs at least {num_classes} input values, got {pixels}")
        self.num_classes = int(num_classes)
        self.label_embedding = label_embedding
        self.label_scale = float(label_scale)
        self.first_goodness_layer = 1 if skip_first else 0
        self.pixels = pixels
        self.widths = widths
        self.embedded = pixels + (num_classes if label_embedding == "append" else 0)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip([self.embedded, *widths[:-1]], widths))

    def image_vector(self, x: Tensor) -> Tensor:
        """The normalised image ``v``, flattened: ``[N, C*H*W]``."""
        return self.input(x).flatten(1)

    def label_columns(self) -> tuple[slice, slice]:
        """The positions of the image values kept and of the label values in an embedded input ``e(v, k)`` (the
        kept image values sit at the same positions in ``v``)."""
        if self.label_embedding == "append":
            return slice(0, self.pixels), slice(self.pixels, self.embedded)
        return slice(self.num_classes, self.pixels), slice(0, self.num_classes)

    def embed(self, v: Tensor, labels: Tensor) -> Tensor:
        """``e(v, labels)``: the flattened images ``v`` with ``label_scale * onehot(labels)`` embedded."""
        keep, label = self.label_columns()
        out = v.new_zeros(v.shape[0], self.embedded)
        out[:, keep] = v[:, keep]
        out[:, label] = self.label_scale * F.one_hot(labels, self.num_classes).to(v.dtype)
        return out

    def activity(self, index: int, h: Tensor) -> Tensor:
        """``relu(W n(h) + b)`` of ``layers[index]`` on the activity (or embedded input) ``h`` below it."""
        return torch.relu(self.layers[index](length_normalise(h)))

    def label_goodness(self, x: Tensor) -> Tensor:
        """``[N, C, layers]``: every layer's goodness for each image ``x`` with each class's label embedded (the
        first layer's ``C`` inputs share one matrix product, see the module doc)."""
        v = self.image_vector(x)
        weight, bias = self.layers[0].weight, self.layers[0].bias
        assert isinstance(weight, Tensor) and isinstance(bias, Tensor)
        keep, label = self.label_columns()
        image = v[:, keep]
        scale = torch.rsqrt((image.pow(2).sum(1) + self.label_scale ** 2) / self.embedded + NORM_EPS)
        shared = image @ weight[:, keep].t()  # [N, H]
        labels = self.label_scale * weight[:, label].t()  # [C, H]
        h = torch.relu((shared.unsqueeze(1) + labels.unsqueeze(0)) * scale.view(-1, 1, 1) + bias)
        out = [goodness(h)]
        for index in range(1, len(self.layers)):
            h = self.activity(index, h)
            out.append(goodness(h))
        return torch.stack(out, dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes]``: each class's goodness summed over the layers read, per unit read (no label
        is read)."""
        read = self.widths[self.first_goodness_layer:]
        return self.label_goodness(x)[..., self.first_goodness_layer:].sum(-1) / sum(read)


def hardest_wrong_labels(logits: Tensor, labels: Tensor) -> Tensor:
    """For each row, the wrong class with the largest logit."""
    return logits.scatter(1, labels.unsqueeze(1), float("-inf")).argmax(1)


def random_wrong_labels(labels: Tensor, num_classes: int, collective: Collective = SINGLE) -> Tensor:
    """A uniformly drawn wrong class per row (drawn for the global batch of a data-parallel run, then sliced)."""
    offsets = torch.randint(1, num_classes, (labels.shape[0] * collective.world,))
    return (labels + collective.local(offsets).to(labels.device)) % num_classes


class FFTrainer(Trainer):
    """Forward-Forward (see the module doc). Options: ``negatives`` (``hard`` | ``random``), ``loss`` (``symmetric`` |
    ``threshold``), ``alpha`` (the loss's steepness), ``threshold`` (per unit, threshold loss only:
    ``theta_l = threshold * width_l``), ``optimizer`` (``adam`` | ``sgd``), ``lr``, ``momentum`` (SGD),
    ``weight_decay``, ``schedule`` (:data:`~zoo.engine.options.SCHEDULES`). A step returns the layers' losses
    summed."""

    state_attrs = ("optimizer",)
    options = {"negatives": "hard", "loss": "symmetric", "alpha": 0.1, "threshold": 1.0, "optimizer": "adam",
               "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0, "schedule": "cosine"}

    def __init__(self, model: nn.Module, config: Mapping[str, Any], steps_per_epoch: int, epochs: int, *,
                 collective: Collective = SINGLE) -> None:
        super().__init__(model, config, steps_per_epoch, epochs, collective=collective)
        if not isinstance(model, FFNet):
            raise TypeError(f"FFTrainer trains an FFNet, not {type(model).__name__}")
        self.net: FFNet = model
        config = self.config
        if config["negatives"] not in NEGATIVES:
            raise ValueError(f"unknown negatives {config['negatives']!r}; accepted: {NEGATIVES}")
        if config["loss"] not in LOSSES:
            raise ValueError(f"unknown loss {config['loss']!r}; accepted: {LOSSES}")
        for key in ("threshold", "alpha"):
            if not float(config[key]) > 0:
                raise ValueError(f"{key} must be positive, got {config[key]}")
        self.negatives = config["negatives"]
        self.loss_kind, self.alpha = str(config["loss"]), float(config["alpha"])
        self.thetas = [float(config["threshold"]) * width for width in self.net.widths]
        self.base_lr = float(config["lr"])
        self.schedule = check_schedule(config["schedule"])
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.params, config["optimizer"], self.base_lr,
                                        momentum=float(config["momentum"]),
                                        weight_decay=float(config["weight_decay"]))

    def negative_labels(self, x: Tensor, y: Tensor) -> Tensor:
        """The wrong labels of the negative data for images ``x`` with labels ``y``."""
        if self.negatives == "hard":
            with torch.no_grad():
                return hardest_wrong_labels(self.net(x), y)
        return random_wrong_labels(y, self.net.num_classes, self.collective)

    def layer_losses(self, x: Tensor, y: Tensor) -> list[Tensor]:
        """Each layer's loss ``L_l`` on the batch, every layer applied to the detached activity below it, so each
        loss has a graph into its own layer's parameters only."""
        negative = self.negative_labels(x, y)
        with torch.no_grad():
            v = self.net.image_vector(x)
            h = torch.cat([self.net.embed(v, y), self.net.embed(v, negative)])
        losses = []
        for index, theta in enumerate(self.thetas):
            h = self.net.activity(index, h.detach())
            g = goodness(h)
            losses.append(ff_loss(g[:len(y)], g[len(y):], self.loss_kind, self.alpha, theta))
        return losses

    def step(self, x: Tensor, y: Tensor) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = self.base_lr * schedule_factor(self.schedule, self.progress())
        self.optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = torch.stack(self.layer_losses(x, y)).sum()
            loss.backward()
        self.collective.average_(p.grad for p in self.params)
        self.optimizer.step()
        self.step_count += 1
        return float(loss.detach())


RULES = (
    Rule(name="ff", learning_rule="forward_forward",
         description="trained with Forward-Forward: each layer separates images with their true label embedded from "
                     "the same images with a wrong one by its goodness, with no gradient between layers.",
         trainer=FFTrainer, paper=PAPER,
         variants={"mlp": Variant(
             summary="Fully connected ReLU layers trained with Forward-Forward: each layer, on its own, gives the "
                     "image with its true label embedded a high goodness (sum of squared activities) and with a "
                     "wrong label a low one; the logits are each label's goodness summed over the layers.",
             build=FFNet, options={"hidden": list(MLP_ARCHITECTURE.options["hidden"]), "label_embedding": "append",
                                   "label_scale": 30.0, "skip_first": False},
             extends=MLP_ARCHITECTURE.name)}),
)
