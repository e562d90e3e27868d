"""The training engine shared by every rule: the :class:`~zoo.engine.trainer.Trainer` interface, the epoch loop
(:func:`~zoo.engine.fit.fit`), resumable training state, devices and data-parallel collectives."""
