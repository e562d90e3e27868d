"""Learning rules. Each module holds one rule: its layers, the state it carries and its training step,
and registers the model families trained with it."""
from zoo.rules import backprop  # noqa: F401
