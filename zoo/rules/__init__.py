"""Learning rules. Each module holds one rule: its layers, the state it carries and its training step,
and registers the model families trained with it."""
from zoo.rules import (
    backprop,  # noqa: F401
    direct_feedback,  # noqa: F401
    feedback_alignment,  # noqa: F401
    krotov,  # noqa: F401
    semihebb,  # noqa: F401
    target_prop,  # noqa: F401
)
