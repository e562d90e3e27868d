"""Learning rules, one module each: the rule's layers, the state it carries, its training step and its ``RULES``
declaration (:mod:`zoo.rules.base`). Modules are discovered by :mod:`zoo.registry`, never listed by hand."""
