"""Scripts and recipes that produce the zoo's checkpoints."""
