"""mkdocs hook: the parts of the docs that are generated from the code, so they cannot drift from it.

A page asks for a generated part with an HTML comment on a line of its own:

- ``<!-- generated: config-keys -->``: every configuration key with its type,
  default and meaning, from :func:`refinekit.config.iter_keys` (the pydantic
  field descriptions), grouped by section.
- ``<!-- generated: recipes -->``: every recipe registered in the environment
  that builds the docs, with the values each one and each of its schedules sets.
- ``<!-- generated: cli -->``: every command of ``refinekit`` with its usage and
  options, read from the click definitions exactly as ``--help`` shows them.
- ``<!-- generated: benchmarks -->``: ``benchmarks/README.md`` (the measured
  figures), one heading level down, or a note while it does not exist yet.

Docstrings written with Sphinx roles (``:func:`x```) render as plain code.

Images listed in :data:`PENDING_IMAGES` that do not exist yet become a note
that says how to make them, instead of a broken link.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from refinekit.config import TrainConfig, iter_keys

DOCS = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)

PENDING_IMAGES = {
    "img/eyes-samples.png": (
        "The sample grid of the default run goes here. Make it with `refinekit run eyes-simgan`, then copy "
        "the last grid, `runs/eyes-simgan/samples/step_NNNNNNN.png`, to `docs/img/eyes-samples.png`."
    ),
}


def config_reference() -> str:
    """Markdown tables of every key, one section per nested model, in the order the model declares them."""
    sections: dict[str, list[tuple[str, str, str, str]]] = {}
    for row in iter_keys():
        section = row[0].split(".")[0] if "." in row[0] else ""
        sections.setdefault(section, []).append(row)
    parts = []
    for section, rows in sections.items():
        if section:
            field = TrainConfig.model_fields[section]
            model: type[BaseModel] = field.annotation  # type: ignore[assignment]
            intro = field.description or (model.__doc__ or "").strip().splitlines()[0]
            parts.append(f"### `{section}.*`\n\n{intro}\n")
        else:
            parts.append("### Top-level keys\n")
        parts.append("| key | type | default | meaning |\n| --- | --- | --- | --- |")
        parts.extend(f"| `{key}` | {_code(type_)} | {_code(default)} | {_cell(meaning)} |" for key, type_, default, meaning in rows)
        parts.append("")
    return "\n".join(parts)


def recipes_reference() -> str:
    """One section per registered recipe: what it is, and every key it and its schedules set."""
    from refinekit.plugins.registry import get_registry

    registry = get_registry()
    parts = []
    for name in registry.names("recipe"):
        entry = registry.get("recipe", name)
        recipe = entry.factory
        parts.append(f"### `{name}`\n\n{recipe.description}\n")
        facts = [f"plugin `{entry.plugin}`"]
        if recipe.default_schedule:
            facts.append(f"default schedule `{recipe.default_schedule}`")
        if recipe.task:
            facts.append(f"evaluation task `{recipe.task}`")
        facts.append("`--synthetic`/`--real` paths tried as " + ", ".join(f"`{d}`" for d in recipe.path_datasets))
        parts.append("- " + "\n- ".join(facts) + "\n")
        columns = ["recipe", *(f"`--schedule {s}`" for s in recipe.schedules)]
        values = [_flatten(recipe.config), *(_flatten(s) for s in recipe.schedules.values())]
        keys = list(dict.fromkeys(k for table in values for k in table))
        parts.append("| key | " + " | ".join(columns) + " |")
        parts.append("| --- " * (len(columns) + 1) + "|")
        for key in keys:
            cells = [_code(repr(table[key])) if key in table else "" for table in values]
            parts.append(f"| `{key}` | " + " | ".join(cells) + " |")
        parts.append("")
    return "\n".join(parts)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value and key != "options":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def cli_reference() -> str:
    """Each command's help, usage and options, from the same click objects that ``--help`` prints."""
    import click

    from refinekit.cli.app import main

    parts = []
    root = click.Context(main, info_name="refinekit", **main.context_settings)
    for name in sorted(main.commands):
        command = main.commands[name]
        ctx = click.Context(command, info_name=name, parent=root)
        parts.append(f"## `refinekit {name}`\n\n{_help_text(command.help or '')}\n")
        parts.append(f"```text\n{command.get_usage(ctx)}\n```\n")
        options = [p for p in command.get_params(ctx) if isinstance(p, click.Option)]  # arguments are in the usage
        records = [r for r in (p.get_help_record(ctx) for p in options) if r]
        parts.append("| option | meaning |\n| --- | --- |")
        parts.extend(f"| {_code(opts)} | {_cell(meaning)} |" for opts, meaning in records)
        parts.append("")
    return "\n".join(parts)


def _help_text(text: str) -> str:
    # click's \b marks a paragraph it must not rewrap; Markdown has no use for it.
    return "\n".join(line for line in text.splitlines() if line.strip() != "\b").strip()


def _cell(text: str) -> str:
    return text.replace("|", "&#124;").replace("\n", " ")


def _code(text: str) -> str:
    # A pipe would end the table cell, even inside a code span, and a backslash would stay visible.
    if "|" in text:
        return "<code>" + html.escape(text, quote=False).replace("|", "&#124;") + "</code>"
    return f"`{text}`"


def benchmarks_reference() -> str:
    """The benchmark figures of ``benchmarks/README.md``, nested under the page's own headings."""
    readme = DOCS.parent / "benchmarks" / "README.md"
    if not readme.exists():
        return '!!! note "Figures to come"\n    Measured figures will appear here from `benchmarks/README.md`.\n'
    lines, fenced = [], False
    for line in readme.read_text(encoding="utf-8").splitlines():
        fenced ^= line.lstrip().startswith("```")
        line = line.replace("](../docs/", "](")  # the README links docs/ files from benchmarks/; the page is in docs/
        lines.append("#" + line if not fenced and re.match(r"#+ ", line) else line)  # not a comment in a code block
    return "\n".join(lines) + "\n"


GENERATORS = {
    "config-keys": config_reference,
    "recipes": recipes_reference,
    "cli": cli_reference,
    "benchmarks": benchmarks_reference,
}


def expand(markdown: str) -> str:
    """Replace every generated-part marker; an unknown marker is an error, not silently left in."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"unknown generated part {name!r}; known: {', '.join(GENERATORS)}")
        return GENERATORS[name]()

    markdown = MARKER.sub(replace, markdown)
    for image, how in PENDING_IMAGES.items():
        if not (DOCS / image).exists():
            markdown = re.sub(
                rf"!\[[^\]]*\]\({re.escape(image)}\)(\{{[^}}]*\}})?", f'!!! note "Image to come"\n    {how}', markdown
            )
    return markdown


SPHINX_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj):(?=<code>)")


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return expand(markdown)


def on_page_content(html_text: str, **kwargs: Any) -> str:
    return SPHINX_ROLE.sub("", html_text)
