"""Source text of a small architecture and rule, used as modules added to the tree and as installed plugins."""
from __future__ import annotations

TINYNET_ARCH = '''
from torch import nn
from zoo.archs.base import PLAIN_LAYERS, Architecture
from zoo.archs.image_input import ImageInput

class TinyNet(nn.Module):
    def __init__(self, in_shape, num_classes, mean, std, width=4, *, layers=PLAIN_LAYERS):
        super().__init__()
        self.input = ImageInput(in_shape, mean, std)
        self.conv = layers.conv(in_shape[0], width, 3, in_shape=tuple(in_shape))
        self.head = layers.linear(width * (in_shape[1] - 2) * (in_shape[2] - 2), num_classes)

    def forward(self, x):
        return self.head(self.conv(self.input(x)).relu().flatten(1))

ARCHITECTURE = Architecture(name="tinynet", summary="A tiny conv net", network=TinyNet, options={"width": 4},
                            datasets=("mnist",))
'''


def scaled_rule(architectures: tuple[str, ...] | None = None) -> str:
    """A rule ``scaled`` (backprop whose linear layers start scaled by its option ``scale``) for ``architectures``
    (``None``: every one)."""
    return f'''
from torch import nn
from zoo.archs.base import LayerKit, plain_conv
from zoo.engine.trainer import GradientTrainer
from zoo.rules.base import Rule

def layers(num_classes, scale):
    def linear(a, b):
        layer = nn.Linear(a, b)
        layer.weight.data.mul_(scale)
        return layer
    return LayerKit(linear=linear, conv=plain_conv)

RULES = (Rule(name="scaled", learning_rule="scaled_backprop", description="trained with scaled init.",
              trainer=GradientTrainer, layers=layers, options={{"scale": 0.5}}, architectures={architectures!r}),)
'''
