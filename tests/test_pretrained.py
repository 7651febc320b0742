"""Pretrained refiners: shipped inside a package, found by recipe name, checked against their model card."""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from refinekit.cli.app import main
from refinekit.errors import CheckpointError, ConfigError
from refinekit.evaluation.api import QUICK, evaluate
from refinekit.plugins.hookspecs import hookimpl
from refinekit.plugins.registry import get_recipe
from refinekit.weights.files import load_refiner
from refinekit.weights.pretrained import (
    get_pretrained,
    list_pretrained,
    package_refiner,
    read_card_fields,
    resolve_refiner,
)
from tests.test_trainer import make_trainer

PACKAGE = "shipped_refiners_for_tests"


@pytest.fixture
def shipped(tiny_domain, tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A trained tiny run, packaged into an importable package and named by a recipe ``tiny-shipped``."""
    run = tmp_path / "run"
    make_trainer(run).fit()
    package = tmp_path / "site" / PACKAGE
    (package / "pretrained").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    package_refiner(run, package / "pretrained" / "tiny-shipped.safetensors", command="refinekit run tiny",
                    machine="the test machine", body="A tiny refiner for tests.")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    recipe = dataclasses.replace(get_recipe("tiny"), name="tiny-shipped",
                                 pretrained=f"{PACKAGE}:pretrained/tiny-shipped.safetensors")

    class Shipping:
        @staticmethod
        @hookimpl
        def register_recipes(register) -> None:
            register(recipe)

    tiny_domain.register_plugin(Shipping, "shipping")
    yield run, package / "pretrained"
    tiny_domain.unregister_plugin("shipping")
    sys.modules.pop(PACKAGE, None)


def test_a_shipped_refiner_loads_by_name_with_the_run_weights(shipped) -> None:
    run, folder = shipped
    assert [p.name for p in list_pretrained()] == ["tiny-shipped"]
    by_name = load_refiner("tiny-shipped").state_dict()
    from_run = load_refiner(run / "refiner.safetensors").state_dict()
    assert by_name.keys() == from_run.keys() and all(torch.equal(by_name[k], from_run[k]) for k in by_name)
    assert resolve_refiner("tiny-shipped") == folder / "tiny-shipped.safetensors"
    assert resolve_refiner(run) == run / "refiner.safetensors"  # a run folder means its refiner


def test_the_model_card_matches_the_shipped_files(shipped) -> None:
    run, _ = shipped
    entry = get_pretrained("tiny-shipped")
    fields = read_card_fields(entry.card)
    assert fields["sha256"] == hashlib.sha256(entry.weights.read_bytes()).hexdigest()
    assert fields["steps"] == str(make_trainer(run / "again").total_steps)
    assert entry.config.read_text() == (run / "config.json").read_text()
    assert "A tiny refiner for tests." in entry.card.read_text()


def test_cli_lists_and_evaluates_a_shipped_refiner(shipped, tmp_path, monkeypatch) -> None:
    listing = CliRunner().invoke(main, ["pretrained"])
    assert listing.exit_code == 0 and "tiny-shipped" in listing.output
    monkeypatch.chdir(tmp_path)
    report = evaluate("tiny-shipped", settings=dataclasses.replace(QUICK, max_images=64))
    assert report.refiner.endswith("tiny-shipped.safetensors")
    assert (tmp_path / "eval-tiny-shipped" / "report.md").exists()  # not inside the installed package


def test_names_that_are_not_shipped_keep_the_file_errors(tiny_domain, tmp_path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_refiner("no-such-refiner")
    with pytest.raises(ConfigError, match="folder without refiner.safetensors"):
        load_refiner(tmp_path)


def test_a_card_without_front_matter_is_refused(tmp_path) -> None:
    card = tmp_path / "card.md"
    card.write_text("# just prose\n")
    with pytest.raises(ConfigError, match="front matter"):
        read_card_fields(card)
