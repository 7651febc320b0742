"""Refining: run an exported refiner over batches, datasets and folders, and make labelled training sets.

``refinekit.refine.X`` for a name of the 0.x module ``refinekit.refine`` still works,
with a warning: see :mod:`refinekit.moved`.
"""

from refinekit.moved import forward_attributes

__getattr__, __dir__ = forward_attributes(__name__, "refinekit.refine.pipeline")
