"""The listing commands: ``plugins``, ``pretrained``, ``recipes`` and ``datasets``.

They import no torch: plugins name their components lazily (see
:mod:`refinekit.plugins.lazy_reference`), so a listing answers in a fraction of a second.
"""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from refinekit.cli.shell import friendly_errors


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--requirements", is_flag=True,
    help="Print name==version of refinekit and every installed plugin distribution, for a requirements file.",
)
@friendly_errors
def plugins(as_json: bool, requirements: bool) -> None:
    """List loaded plugins, their versions, hooks and components."""
    from refinekit.plugins.registry import get_registry, iter_plugins, pinned_requirements

    if requirements:
        click.echo("\n".join(pinned_requirements()))
        return
    infos = list(iter_plugins())
    problems = get_registry().problems
    if as_json:
        payload = {
            "plugins": [
                {"name": i.name, "version": i.version, "distribution": i.distribution, "hooks": i.hooks,
                 "components": i.components}
                for i in infos
            ],
            "problems": problems,
        }
        click.echo(json.dumps(payload, indent=2))
        return
    from refinekit.cli.tables import plugins_table

    Console().print(plugins_table(infos))


@click.command()
@friendly_errors
def pretrained() -> None:
    """List the trained refiners that installed plugins ship, usable wherever a refiner is asked for."""
    from refinekit.weights.pretrained import list_pretrained

    table = Table(title="pretrained refiners", caption="refinekit refine NAME INPUT OUTPUT; refinekit.load_refiner(NAME)")
    for column in ("name", "size", "model card"):
        table.add_column(column)
    for shipped in list_pretrained():
        size = f"{shipped.weights.stat().st_size / 1e6:.1f} MB" if shipped.weights.is_file() else "missing"
        table.add_row(shipped.name, size, str(shipped.card))
    Console().print(table)


@click.command()
@click.argument("recipe", required=False)
@click.option(
    "--keys", is_flag=True,
    help="Also list every configuration key with its type and default; with RECIPE, the values RECIPE runs with.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly_errors
def recipes(recipe: str | None, keys: bool, as_json: bool) -> None:
    """List recipes with a one-line description each; RECIPE: that recipe alone."""
    from refinekit.cli.tables import key_rows, keys_table, recipe_rows, recipes_table
    from refinekit.plugins.registry import get_recipe, get_registry

    registry = get_registry()
    if recipe is not None:
        get_recipe(recipe)  # an unknown name: the error lists the close matches
    rows = recipe_rows(registry, [recipe] if recipe is not None else registry.names("recipe"))
    key_list = key_rows(recipe) if keys else None
    if as_json:
        click.echo(json.dumps({"recipes": rows, **({"keys": key_list} if keys else {})}, indent=2))
        return
    out = Console()
    out.print(recipes_table(rows))
    if key_list is not None:
        out.print(keys_table(key_list, recipe))


@click.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly_errors
def datasets(name: str | None, as_json: bool) -> None:
    """List dataset loaders and their options; NAME: that loader's options in full."""
    from refinekit.cli.tables import dataset_rows, datasets_listing
    from refinekit.plugins.registry import get_dataset, get_registry

    registry = get_registry()
    if name is not None:
        get_dataset(name)  # an unknown name: the error lists the close matches
    rows = dataset_rows(registry, [name] if name is not None else registry.names("dataset"))
    if as_json:
        click.echo(json.dumps({"datasets": rows}, indent=2))
        return
    Console().print(datasets_listing(rows, detailed=name is not None))
