"""The listing commands at 80 columns: names a user types next are whole, nothing is cut with an ellipsis."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from refinekit.cli.app import main
from refinekit.config import iter_keys
from refinekit.plugins.registry import iter_plugins


def listing(*args: str, columns: int = 80) -> str:
    result = CliRunner().invoke(main, list(args), env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("columns", [80, 100, 200])
def test_plugins_wraps_instead_of_cutting(tiny_domain, columns: int) -> None:
    text = listing("plugins", columns=columns)
    assert "…" not in text and all(len(line) <= columns for line in text.splitlines())
    words = set(text.replace(",", " ").replace(";", " ").split())
    for info in iter_plugins():
        assert info.name in words and info.distribution in words
        assert set(info.hooks) <= words
        for names in info.components.values():
            assert set(names) <= words


def test_recipe_keys_are_whole_at_80_columns(tiny_domain) -> None:
    text = listing("recipes", "--keys")
    assert "…" not in text and all(len(line) <= 80 for line in text.splitlines())
    lines = {line.strip() for line in text.splitlines()}
    for key, *_ in iter_keys():
        assert key in lines, f"{key} is not on a line of its own"


def test_recipe_keys_show_what_a_recipe_sets_and_what_it_inherits(tiny_domain) -> None:
    text = listing("recipes", "tiny", "--keys")
    block = text[text.index("\nbatch_size\n") :].split("\n")[1:4]
    assert any("tiny: 8" in line for line in block)  # the recipe's own batch size
    k_g = text[text.index("\nschedule.k_g\n") :].split("\n")[1:4]
    assert any("value: 2 (refinekit's default)" in line for line in k_g)  # inherited


def test_recipes_json(tiny_domain) -> None:
    payload = json.loads(listing("recipes", "--json"))
    assert "tiny" in [r["name"] for r in payload["recipes"]] and "keys" not in payload
    payload = json.loads(listing("recipes", "tiny", "--keys", "--json"))
    assert [r["name"] for r in payload["recipes"]] == ["tiny"]
    keys = {row["key"]: row for row in payload["keys"]}
    assert keys["batch_size"]["value"] == "8" and keys["batch_size"]["from"] == "recipe"
    assert keys["schedule.k_g"]["from"] == "default" and keys["optim.name"]["value"] == "'adam'"
