"""The generated parts of the docs cover the code: every hook, config key, command and option."""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path

import click
import pytest

from refinekit.cli.app import main
from refinekit.config import iter_keys
from refinekit.plugins import hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def load_hook_module():
    spec = importlib.util.spec_from_file_location("generated_reference", DOCS / "hooks" / "generated_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generated = load_hook_module()


def hook_names() -> list[str]:
    return sorted(name for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, "refinekit_spec"))


def plugin_page_sections() -> dict[str, str]:
    """Hook name -> the text of its section on the Writing a plugin page."""
    text = (DOCS / "plugins.md").read_text()
    parts = re.split(r"^### `(\w+)\(register\)`\s*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1].split("\n## ")[0] for i in range(1, len(parts), 2)}


def test_the_hookspecs_are_found() -> None:
    assert {"register_refiners", "register_datasets", "register_recipes"} <= set(hook_names())


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_has_a_documented_section_with_an_example(hook: str) -> None:
    sections = plugin_page_sections()
    assert hook in sections, f"docs/plugins.md has no section '### `{hook}(register)`' for the hook {hook}"
    section = sections[hook]
    assert inspect.signature(getattr(hookspecs, hook)).parameters.keys() == {"register"}, (
        f"{hook}'s signature changed; update its section in docs/plugins.md"
    )
    assert "register(" in section, f"docs/plugins.md: the {hook} section does not show how to call register"
    assert re.search(rf"```python\n.*?@hookimpl\ndef {hook}\(register\):", section, re.DOTALL), (
        f"docs/plugins.md: the {hook} section has no example implementing it"
    )


def test_no_section_documents_a_hook_that_does_not_exist() -> None:
    assert set(plugin_page_sections()) <= set(hook_names())


def test_config_reference_has_every_key_once() -> None:
    text = generated.config_reference()
    for key, _, default, _ in iter_keys():
        assert len(re.findall(rf"^\| `{re.escape(key)}` \|", text, re.MULTILINE)) == 1, key
    assert "| `refiner.name` | `str` | `'simgan-resnet'` |" in text  # a nested default, not "required"
    assert "<code>'auto' &#124; 'cpu' &#124; 'cuda'</code>" in text  # a pipe cannot end the table cell


def test_cli_reference_has_every_command_and_option() -> None:
    text = generated.cli_reference()
    for name, command in main.commands.items():
        assert f"## `refinekit {name}`" in text
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.opts[0] in text, f"refinekit {name} {param.opts[0]} is missing from the CLI reference"
    assert "--requirements" in text


def test_recipes_reference_lists_each_registered_recipe_with_its_schedules(tiny_domain) -> None:
    text = generated.recipes_reference()
    assert "### `tiny`" in text and "### `simgan`" in text
    assert "| `schedule.steps` | `6` |" in text and "| `synthetic.options` | `{'bright': 60}` |" in text


def test_pages_ask_for_the_generated_parts() -> None:
    assert "<!-- generated: config-keys -->" in (DOCS / "configuration.md").read_text()
    assert "<!-- generated: recipes -->" in (DOCS / "configuration.md").read_text()
    assert "<!-- generated: cli -->" in (DOCS / "cli.md").read_text()


def test_an_unknown_generated_part_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown generated part 'config-kyes'"):
        generated.expand("<!-- generated: config-kyes -->")


def test_a_pending_image_becomes_a_note_until_it_exists(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(generated, "DOCS", tmp_path)
    page = "Before\n\n![Sample grid](img/eyes-samples.png)\n\nAfter"
    assert '!!! note "Image to come"' in generated.expand(page) and "](img/eyes-samples.png)" not in generated.expand(page)
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "eyes-samples.png").write_bytes(b"png")
    assert generated.expand(page) == page


def test_sphinx_roles_render_as_code() -> None:
    assert generated.on_page_content(":func:<code>refinekit.load_refiner</code>") == "<code>refinekit.load_refiner</code>"


def test_benchmark_figures_nest_under_the_performance_page(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(generated, "DOCS", tmp_path / "docs")
    assert "Figures to come" in generated.benchmarks_reference()
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "README.md").write_text(
        "# Benchmarks\n\n```bash\n# a comment\n```\n## Refine\n![plot](../docs/img/plot.png)\n"
    )
    assert generated.benchmarks_reference() == (
        "## Benchmarks\n\n```bash\n# a comment\n```\n### Refine\n![plot](img/plot.png)\n"
    )
