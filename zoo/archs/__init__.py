"""Network architectures, one module each, with its ``ARCHITECTURE`` declaration (:mod:`zoo.archs.base`); every
layer-based learning rule trains each of them through its layer slots. Modules are discovered by
:mod:`zoo.registry`. ``hebbian`` and ``image_input`` hold the parts other networks are built from."""
