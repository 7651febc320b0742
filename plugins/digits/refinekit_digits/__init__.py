"""refinekit-digits: a refinekit domain plugin for digits, from rendered fonts to handwriting.

Importing this package registers nothing; refinekit loads :mod:`refinekit_digits.plugin`
through the ``refinekit`` entry point.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("refinekit-digits")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"
