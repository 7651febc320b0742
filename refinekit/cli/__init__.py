"""The ``refinekit`` command: the group in :mod:`refinekit.cli.app`, one small module per command group.

``refinekit.cli.main`` (0.x) still works, with a warning: see :mod:`refinekit.moved`.
"""

from refinekit.moved import forward_attributes

__getattr__, __dir__ = forward_attributes(__name__, "refinekit.cli.app")
