"""Refiners that plugins ship, trained, inside their packages: loaded by recipe name, never downloaded.

A recipe names its shipped refiner as a package resource (``Recipe.pretrained``,
e.g. ``refinekit_eyes:pretrained/eyes-simgan.safetensors``). Beside the weights
lie the run's ``.json`` config, from which evaluation rebuilds the data, and a
``.md`` model card: the command that trained it, its data, steps, wall time,
machine and evaluation. Wherever refinekit takes a refiner, it takes a file, a
run folder or such a name (:func:`resolve_refiner`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from refinekit.errors import ConfigError

REFINER_FILE = "refiner.safetensors"


@dataclass(frozen=True)
class PretrainedRefiner:
    """A shipped refiner: its recipe's name and its three files."""

    name: str
    weights: Path
    config: Path
    card: Path
    description: str


def _located(name: str, resource: str) -> PretrainedRefiner:
    package, sep, relative = resource.partition(":")
    if not sep or not relative.endswith(".safetensors"):
        raise ConfigError(
            f"recipe '{name}': pretrained={resource!r} must be 'package:path/to/file.safetensors'"
        )
    try:
        weights = Path(str(resources.files(package).joinpath(relative)))
    except ModuleNotFoundError:
        raise ConfigError(f"recipe '{name}': pretrained={resource!r} names package '{package}', which is not installed") from None
    return PretrainedRefiner(name, weights, weights.with_suffix(".json"), weights.with_suffix(".md"), resource)


def list_pretrained() -> list[PretrainedRefiner]:
    """Every registered recipe's shipped refiner, by name."""
    from refinekit.plugins.registry import get_recipe, list_recipes

    found = []
    for name in list_recipes():
        resource = get_recipe(name).pretrained
        if resource is not None:
            found.append(_located(name, resource))
    return found


def get_pretrained(name: str) -> PretrainedRefiner | None:
    """The refiner recipe ``name`` ships, or None when there is no such recipe or it ships none."""
    return next((p for p in list_pretrained() if p.name == name), None)


def resolve_refiner(spec: str | os.PathLike[str]) -> Path:
    """The refiner file that ``spec`` means: a file, a run folder's ``refiner.safetensors``, or a shipped refiner.

    Anything else comes back unchanged, for the file reader to report.

    Examples:
        >>> resolve_refiner("eyes-simgan")  # doctest: +SKIP
        PosixPath('.../refinekit_eyes/pretrained/eyes-simgan.safetensors')
    """
    path = Path(spec)
    if path.is_dir():
        if (path / REFINER_FILE).is_file():
            return path / REFINER_FILE
        raise ConfigError(f"{path} is a folder without {REFINER_FILE}; is it a run folder written by 'refinekit run'?")
    if path.exists() or os.sep in str(spec) or path.suffix:
        return path
    shipped = get_pretrained(str(spec))
    if shipped is None:
        return path
    if not shipped.weights.is_file():
        raise ConfigError(
            f"the pretrained refiner '{spec}' should be at {shipped.weights}, which is missing: "
            "reinstall the plugin that ships it"
        )
    return shipped.weights


def read_card_fields(card: Path) -> dict[str, str]:
    """The ``key: value`` lines of a model card's front matter (between the two ``---`` lines)."""
    lines = card.read_text().splitlines()
    if not lines or lines[0] != "---" or "---" not in lines[1:]:
        raise ConfigError(f"{card}: a model card starts with a '---' front matter block of 'key: value' lines")
    fields = {}
    for line in lines[1 : lines.index("---", 1)]:
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def package_refiner(run_dir: Path, weights: Path, *, command: str, machine: str, body: str) -> PretrainedRefiner:
    """Copy a finished run's refiner and config to ``weights`` (+ ``.json``) and write its model card (``.md``).

    The card's front matter records what a test can check against the files:
    the weights' SHA-256, the run's step count and its wall time from ``metrics.jsonl``.

    Args:
        run_dir: a run folder written by ``refinekit run``.
        weights: destination ``NAME.safetensors`` inside the plugin package.
        command: the exact command that trained the run.
        machine: the machine and its load while training.
        body: the card's prose: data, evaluation report, caveats (markdown).
    """
    import hashlib
    import json
    import shutil

    source = run_dir / REFINER_FILE
    weights.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, weights)
    shutil.copyfile(run_dir / "config.json", weights.with_suffix(".json"))
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    front = {
        "name": weights.stem,
        "sha256": digest,
        "steps": str(rows[-1]["step"]) if rows else "0",
        "command": command,
        "machine": machine,
    }
    card = "---\n" + "".join(f"{k}: {v}\n" for k, v in front.items()) + "---\n\n" + body.strip() + "\n"
    weights.with_suffix(".md").write_text(card)
    return PretrainedRefiner(weights.stem, weights, weights.with_suffix(".json"), weights.with_suffix(".md"), str(weights))
