"""Scripts and recipes that produce the zoo's checkpoints.

Importing the package sets the engine's portable arithmetic before torch starts (:mod:`training.arithmetic`)."""
from training.arithmetic import apply

apply()
