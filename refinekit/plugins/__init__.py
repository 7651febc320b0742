"""The plugin boundary, the one folder a plugin author reads: hook specifications, the registry
built from them, :class:`~refinekit.plugins.recipe.Recipe`, the run-time probe, and the contract tests.

``refinekit.plugins.X`` for a name of the 0.x module ``refinekit.plugins`` still works,
with a warning: see :mod:`refinekit.moved`.
"""

from refinekit.moved import forward_attributes

__getattr__, __dir__ = forward_attributes(__name__, "refinekit.plugins.registry")
