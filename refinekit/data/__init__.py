"""Data: the ImageSet every dataset returns, image files, the one folder walker, loading and caching.

``refinekit.data.X`` for a name of the 0.x module ``refinekit.data`` (``ImageSet``,
``BatchSampler``, ...) still works, with a warning: see :mod:`refinekit.moved`.
"""

from refinekit.moved import forward_attributes

__getattr__, __dir__ = forward_attributes(__name__, "refinekit.data.image_set")
