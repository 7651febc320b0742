"""``python -m refinekit`` (also what ``torchrun -m refinekit`` runs)."""

from refinekit.cli.commands import main

main()
