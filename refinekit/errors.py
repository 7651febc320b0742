"""Typed errors. The CLI turns each into a one-paragraph message and exit code 2."""

from __future__ import annotations


class RefinekitError(Exception):
    """Base class: a problem the user can fix, described in the message."""


class ConfigError(RefinekitError):
    """A configuration key, value or override is wrong."""


class DataError(RefinekitError):
    """An input file or folder is missing, malformed or mismatched."""


class PluginError(RefinekitError):
    """A plugin failed to load or registered something invalid."""


class UnknownNameError(RefinekitError, KeyError):
    """A component, dataset or recipe name is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(RefinekitError):
    """A checkpoint or exported refiner cannot be read or does not fit."""


class DiskFullError(RefinekitError):
    """The disk (or quota) filled up while writing; what was finished is kept."""


class FolderBusyError(RefinekitError):
    """Another process is writing into the same output folder (its lock names it)."""


class NonFiniteLossError(RefinekitError):
    """A loss became NaN or Inf; the run stopped and kept its last good checkpoint."""
