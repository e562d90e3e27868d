"""Learning rules. Each module holds one rule: its layers, the state it carries and its training step,
and registers the model families trained with it."""
from zoo.rules import backprop  # noqa: F401
from zoo.rules import feedback_alignment  # noqa: F401
from zoo.rules import direct_feedback  # noqa: F401
from zoo.rules import target_prop  # noqa: F401
from zoo.rules import krotov  # noqa: F401
from zoo.rules import semihebb  # noqa: F401
