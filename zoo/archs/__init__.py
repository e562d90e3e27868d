"""Network architectures. Each is defined once; a learning rule attaches to it through the layer factories."""
