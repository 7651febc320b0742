"""``python -m refinekit`` (also what ``torchrun -m refinekit`` runs)."""

from refinekit.cli.app import main

main()
