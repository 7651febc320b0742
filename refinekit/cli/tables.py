"""What the listing commands print (``refinekit plugins``, ``refinekit recipes``): tables that wrap, and JSON.

Nothing is cut with an ellipsis: the names printed here (config keys, component
and hook names) are what a user types next, so each stays whole on one line and
the prose wraps. Where a table cannot fit the terminal (the configuration keys,
or the plugins on a narrow one) each row becomes a short block of lines instead.
"""

from __future__ import annotations

from typing import Any, Iterable

from rich.console import Console, ConsoleOptions, RenderResult
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from refinekit.config import iter_keys


def wrapping_table(title: str, columns: Iterable[tuple[str, bool]], caption: str | None = None) -> Table:
    """A table whose ``(name, whole)`` columns wrap; ``whole`` ones never break a word, the others fold long ones."""
    table = Table(title=title, caption=caption)
    for name, whole in columns:
        table.add_column(name, overflow="fold", no_wrap=False, ratio=None if whole else 1)
    return table


def _min_widths(table: Table, rows: list[list[str]], whole: Iterable[bool]) -> None:
    """Give each ``whole`` column the width of its longest word, so rich shrinks the others first."""
    for index, (column, keep) in enumerate(zip(table.columns, whole)):
        if keep:
            words = [word for row in rows for word in row[index].split()] + [str(column.header)]
            column.min_width = max(map(len, words), default=1)


class Records:
    """Rows as blocks: the name in bold, then ``label: value`` lines that wrap under a hanging indent."""

    def __init__(self, title: str, records: list[tuple[str, list[tuple[str, str]]]]) -> None:
        self.title = title
        self.records = records

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text(self.title, style="bold underline")
        for name, fields in self.records:
            yield Text(name, style="bold")
            for label, value in fields:
                if value:
                    line = Text.assemble((f"{label}: ", "dim"), value) if label else Text(value)
                    yield Padding(line, (0, 0, 0, 4), expand=False)


class _TableOrRecords:
    """The table where the terminal is wide enough for its whole-word columns, else :class:`Records`."""

    def __init__(self, table: Table, needed: int, records: Records) -> None:
        self.table, self.needed, self.records = table, needed, records

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table if options.max_width >= self.needed else self.records


def plugins_table(infos: Iterable[Any]) -> Any:
    """One row per loaded plugin: distribution, version, hooks and components by kind."""
    columns = [("plugin", True), ("distribution", True), ("version", True), ("hooks", True), ("components", False)]
    table = wrapping_table("refinekit plugins", columns)
    rows, records = [], []
    for info in infos:
        kinds = sorted(info.components.items())
        components = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in kinds)
        rows.append([info.name, info.distribution, info.version, ", ".join(info.hooks), components])
        fields = [("distribution", f"{info.distribution} {info.version}"), ("hooks", ", ".join(info.hooks))]
        records.append((info.name, fields + [(kind, ", ".join(names)) for kind, names in kinds]))
    _min_widths(table, rows, [c[1] for c in columns])
    for row in rows:
        table.add_row(*row)
    # every whole column, the borders and padding (3 a column, plus 1), and 30 columns of components
    needed = sum(c.min_width or 0 for c in table.columns) + 3 * len(columns) + 1 + 30
    return _TableOrRecords(table, needed, Records("refinekit plugins", records))


def recipe_rows(registry: Any, names: Iterable[str]) -> list[dict[str, Any]]:
    """Name, plugin, schedules, default schedule and description of each recipe."""
    rows = []
    for name in names:
        entry = registry.get("recipe", name)
        recipe = entry.factory
        rows.append({
            "name": name,
            "plugin": entry.plugin,
            "schedules": sorted(recipe.schedules),
            "default_schedule": getattr(recipe, "default_schedule", None),
            "description": entry.description,
        })
    return rows


def recipes_table(rows: list[dict[str, Any]]) -> Table:
    columns = [("recipe", True), ("plugin", True), ("schedules", True), ("description", False)]
    table = wrapping_table("recipes", columns)
    cells = [[r["name"], r["plugin"], ", ".join(r["schedules"]), r["description"]] for r in rows]
    _min_widths(table, cells, [c[1] for c in columns])
    for row in cells:
        table.add_row(*row)
    return table


def key_rows(recipe: str | None = None) -> list[dict[str, str]]:
    """Every configuration key: type, meaning, the core default and, for ``recipe``, the value it runs with.

    ``from`` says where a recipe's value comes from: ``recipe`` where the recipe
    sets it, ``default`` where it inherits the core default (e.g. ``k_g``).
    """
    core = iter_keys()
    if recipe is None:
        return [{"key": k, "type": t, "default": d, "meaning": m} for k, t, d, m in core]
    from refinekit.config import TrainConfig
    from refinekit.training.setup import resolve_config

    config = resolve_config(recipe)
    values = {k: v for k, _, v, _ in iter_keys(TrainConfig, "", config)}
    rows = []
    for key, kind, default, meaning in core:
        value = values.get(key, default)
        rows.append({
            "key": key, "type": kind, "value": value, "default": default, "meaning": meaning,
            "from": "default" if value == default else "recipe",
        })
    return rows


def keys_table(rows: list[dict[str, str]], recipe: str | None = None) -> Records:
    """The configuration keys, one block each; with ``recipe``, the values it runs with and whether it sets them."""
    if recipe is None:
        title = "configuration keys (--set KEY=VALUE)"
        records = [(r["key"], [("type", r["type"]), ("default", r["default"]), ("", r["meaning"])]) for r in rows]
    else:
        title = f"configuration keys of {recipe} (--set KEY=VALUE)"
        records = [
            (
                r["key"],
                [
                    ("type", r["type"]),
                    (recipe, r["value"]) if r["from"] == "recipe" else ("value", f"{r['value']} (refinekit's default)"),
                    ("refinekit's default", r["default"] if r["from"] == "recipe" else ""),
                    ("", r["meaning"]),
                ],
            )
            for r in rows
        ]
    return Records(title, records)


_LOADER_ARGUMENTS = frozenset({"path", "channels", "size", "limit", "seed", "skip_bad"})
"""What the core passes every loader; the other parameters are the loader's own options."""


def _documented_args(doc: str | None) -> dict[str, str]:
    """``{name: text}`` from a Google-style ``Args:`` block (continuation lines joined)."""
    found: dict[str, str] = {}
    current, indent = None, None
    in_args = False
    for line in (doc or "").splitlines():
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Options:"):
            in_args, indent = True, None
            continue
        if not in_args:
            continue
        if not stripped:
            current = None
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent or (stripped.endswith(":") and depth <= indent and " " not in stripped):
            in_args = False
            continue
        name, sep, text = stripped.partition(":")
        if depth == indent and sep and name.replace("_", "").replace("*", "").isalnum():
            current = name.strip("*").split(" ")[0]
            found[current] = text.strip()
        elif current is not None:
            found[current] = f"{found[current]} {stripped}".strip()
    return found


def dataset_options(factory: Any) -> list[dict[str, str]]:
    """A loader's own options (name, default, type, meaning), from its signature and docstring."""
    import inspect

    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return []
    documented = _documented_args(inspect.getdoc(factory))
    options = []
    for position, (name, param) in enumerate(signature.parameters.items()):
        if position == 0 or name in _LOADER_ARGUMENTS or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = "required" if param.default is param.empty else repr(param.default)
        kind = "" if param.annotation is param.empty else getattr(param.annotation, "__name__", str(param.annotation))
        options.append({"name": name, "default": default, "type": kind, "meaning": documented.get(name, "")})
    return options


def dataset_rows(registry: Any, names: Iterable[str]) -> list[dict[str, Any]]:
    """Each dataset loader: plugin, description, whether it detects paths, and its options."""
    rows = []
    for name in names:
        entry = registry.get("dataset", name)
        rows.append({
            "name": name,
            "plugin": entry.plugin,
            "description": entry.description,
            "detects_paths": "detect" in entry.extra,
            "options": dataset_options(entry.factory),
        })
    return rows


def datasets_listing(rows: list[dict[str, Any]], detailed: bool) -> Records:
    """One block per loader; ``detailed`` adds one line per option and how to set it."""
    records = []
    for row in rows:
        fields = [
            ("plugin", row["plugin"]),
            ("", row["description"]),
            ("paths", "detected (--synthetic PATH / --real PATH)" if row["detects_paths"] else "not detected: name it"),
        ]
        if not detailed:
            summary = ", ".join(f"{o['name']}={o['default']}" for o in row["options"])
            fields.append(("options", summary or "none"))
        else:
            for option in row["options"]:
                kind = f", {option['type']}" if option["type"] else ""
                meaning = f": {option['meaning']}" if option["meaning"] else ""
                fields.append((option["name"], f"default {option['default']}{kind}{meaning}"))
            if row["options"]:
                first = row["options"][0]["name"]
                fields.append(("set with", f"--set synthetic.options.{first}=VALUE (or real.options.{first})"))
        records.append((row["name"], fields))
    return Records("dataset loaders" if not detailed else "dataset loader", records)
