"""The ``refinekit`` command group. Each command lives in its own module and imports its heavy parts
(torch, the training loop) only when it runs, so ``refinekit --help`` and the listings start at once.
"""

from __future__ import annotations

import warnings

import click

from refinekit.cli.evaluate_command import evaluate
from refinekit.cli.listing_commands import datasets, plugins, pretrained, recipes
from refinekit.cli.refine_commands import convert, refine
from refinekit.cli.run_command import run
from refinekit.cli.shell import show_warnings
from refinekit.runtime.openmp import wait_passively


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-paragraph errors.")
@click.version_option(package_name="refinekit")
def main(debug: bool) -> None:
    """Refine synthetic images to look real while keeping their annotations (SimGAN)."""
    warnings.showwarning = show_warnings
    wait_passively()  # before any command imports torch: libgomp reads it once


for command in (run, refine, plugins, pretrained, recipes, datasets, convert, evaluate):
    main.add_command(command)
