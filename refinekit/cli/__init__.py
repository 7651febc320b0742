"""The ``refinekit`` command: one small module per command group, over the Python API."""
