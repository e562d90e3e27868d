"""Where weights come from and how they are checked: the manifest, checkpoint files (safetensors only),
the load path over every source (checkout, cache, URL, Hugging Face Hub), downloads, hashes, model cards and
``zoo verify``."""
