"""Digits-plugin test fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from refinekit_digits import plugin

from refinekit.plugins.registry import Registry, get_registry, reset_registry


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """Built-ins plus this plugin, registered in-process: the tests pass before `pip install`."""
    monkeypatch.setenv("REFINEKIT_DISABLE_ENTRY_POINTS", "1")
    monkeypatch.delenv("REFINEKIT_LOAD_PLUGINS", raising=False)
    reset_registry()
    registry = get_registry()
    registry.register_plugin(plugin, "digits")
    yield registry
    reset_registry()
