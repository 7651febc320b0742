"""Every runnable code block in the docs runs, and prints what the page says it prints.

How a page's blocks are run:

- ```` ```python ```` blocks run in page order, in one module per page (so later
  blocks see earlier names, and ``sys.modules[__name__]`` is the page), in a fresh
  working folder.
- ```` ```bash ```` blocks whose lines all start with ``refinekit `` run through the
  CLI, in-process with click's CliRunner; other bash blocks are only shown.
- An HTML comment on the line before a block changes it:
  ``<!-- doc: skip (why) -->`` skips it (keep these rare);
  ``<!-- doc: slow (why) -->`` runs it only in the slow variant of the page's test
  (``-m slow``), for blocks that would make the default suite slow;
  ``<!-- doc: exit N -->`` expects exit code N instead of 0;
  ``<!-- doc: file NAME -->`` writes the block to NAME in the working folder;
  ``<!-- doc: output -->`` makes a block the expected output of the runnable block
  before it: each line must appear, in order, ``...`` matches anything, and runs of
  whitespace are equal (the terminal may wrap lines).
- ``--8<-- "path"`` lines are replaced by the file, as pymdownx.snippets does.

Pages show real commands with real step counts; the test shrinks every resolved
training configuration (:func:`tiny`) and every evaluation budget instead, so the
whole docs run takes seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import re
import shlex
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

import refinekit
import refinekit.training.setup
from refinekit.config import TrainConfig, build_config

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if not {"hooks", "figures"} & set(p.relative_to(DOCS).parts))
MARKER = re.compile(r"^\s*<!-- doc: (skip|slow|exit|file|output)\b ?(.*?) -->\s*$")
FENCE = re.compile(r"^(\s*)```(\w*)")
SNIPPET = re.compile(r'^\s*--8<-- "([^"]+)"\s*$')
TINY_IMAGES = 16
# Narrower built-in networks: the docs tests check that commands work, not what they learn.
NARROW = {"simgan-resnet": {"features": 8, "blocks": 1}, "local-patch": {"widths": [16, 16, 8, 8]}}
REPO_PLUGINS = ("refinekit_eyes.plugin", "refinekit_digits.plugin")


@dataclasses.dataclass
class Block:
    page: Path
    line: int
    lang: str
    code: str
    marker: str = ""
    argument: str = ""

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"

    @property
    def is_cli(self) -> bool:
        lines = [l for l in self.code.splitlines() if l.strip() and not l.lstrip().startswith("#")]
        return self.lang in ("bash", "console", "shell") and bool(lines) and lines[0].startswith("refinekit ")


def page_lines(path: Path) -> list[str]:
    """The page's lines with snippet includes expanded, as mkdocs sees them."""
    lines: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = SNIPPET.match(line)
        lines.extend((ROOT / match.group(1)).read_text(encoding="utf-8").splitlines() if match else [line])
    return lines


def read_blocks(path: Path) -> list[Block]:
    lines = page_lines(path)
    blocks: list[Block] = []
    marker, argument = "", ""
    i = 0
    while i < len(lines):
        found = MARKER.match(lines[i])
        fence = FENCE.match(lines[i])
        if found:
            marker, argument = found.group(1), found.group(2).strip()
        elif fence:
            indent, start = fence.group(1), i + 1
            i += 1
            body = []
            while i < len(lines) and not lines[i].strip().startswith("```"):
                body.append(lines[i][len(indent):])
                i += 1
            blocks.append(Block(path, start, fence.group(2), "\n".join(body) + "\n", marker, argument))
            marker, argument = "", ""
        elif lines[i].strip():
            marker, argument = "", ""  # a marker belongs to the block right after it
        i += 1
    return blocks


def tiny(config: TrainConfig) -> TrainConfig:
    """The same run, a few steps long on a few images, with narrow built-in networks, on the CPU."""
    data = config.model_dump(mode="json")
    schedule = data["schedule"]
    schedule["refiner_pretrain_steps"] = min(schedule["refiner_pretrain_steps"], 1)
    schedule["discriminator_pretrain_steps"] = min(schedule["discriminator_pretrain_steps"], 1)
    schedule["steps"] = min(math.ceil(schedule["steps"] / 100), 4)  # more rounds stay more, so --resume continues
    data["batch_size"] = min(data["batch_size"], 4)
    data["buffer_size"] = min(data["buffer_size"], 8)
    for side in ("synthetic", "real"):
        data[side]["limit"] = min(data[side]["limit"] or TINY_IMAGES, TINY_IMAGES)
    for key in ("log_every", "sample_every", "checkpoint_every"):
        data[key] = 1 if key == "log_every" else min(data[key], 2)
    for part in ("refiner", "discriminator"):
        data[part]["options"] = {**data[part]["options"], **NARROW.get(data[part]["name"], {})}
    data.update(device="cpu", compile=False)
    return build_config(data)


def expected_output_matches(expected: str, output: str) -> str | None:
    """None if every expected line appears in order in ``output``; else the first line that does not."""
    flat = " ".join(output.split())
    position = 0
    for line in expected.splitlines():
        line = " ".join(line.split())
        if not line:
            continue
        pattern = ".*?".join(re.escape(part.strip()) for part in line.split("..."))
        found = re.compile(pattern).search(flat, position)
        if found is None:
            return line
        position = found.end()
    return None


@pytest.fixture
def docs_environment(isolated_registry, tmp_path, monkeypatch):
    """The repository's plugins registered, tiny training and evaluation, and an empty working folder."""
    for module_name in REPO_PLUGINS:
        try:
            module = __import__(module_name, fromlist=["_"])
        except ImportError:
            continue
        isolated_registry.register_plugin(module, module_name.split(".")[0].removeprefix("refinekit_"))
    original = refinekit.training.setup.resolve_config
    monkeypatch.setattr(refinekit.training.setup, "resolve_config", lambda *a, **kw: tiny(original(*a, **kw)))
    # refinekit.resolve_config (lazily re-exported) stays the real one: pages print the configs users get
    monkeypatch.setattr(refinekit, "resolve_config", original, raising=False)
    _shrink_evaluation(monkeypatch)
    monkeypatch.chdir(tmp_path)
    return isolated_registry


def _shrink_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        import refinekit.evaluation
        import refinekit.evaluation.api as evaluation_api
        from refinekit.evaluation.realism import RealismSettings
    except ImportError:
        return
    original = evaluation_api.evaluate
    small = evaluation_api.EvaluationSettings(
        max_images=24, realism=RealismSettings(steps=3, batch_size=8, width=4), kid_subsets=2, task_steps=3
    )

    def evaluate_small(*args, **kwargs):
        kwargs["settings"] = small
        return original(*args, **kwargs)

    for module in (evaluation_api, refinekit.evaluation, refinekit):
        if getattr(module, "evaluate", None) is original:
            monkeypatch.setattr(module, "evaluate", evaluate_small)


def run_cli(block: Block) -> tuple[int, str]:
    from refinekit.cli.app import main

    output, code = [], 0
    for command in block.code.replace("\\\n", " ").splitlines():
        if not command.strip() or command.lstrip().startswith("#"):
            continue
        assert command.startswith("refinekit "), f"{block.where}: mixes refinekit and other commands; split the block"
        result = CliRunner().invoke(main, shlex.split(command)[1:], catch_exceptions=False)
        output.append(result.output)
        code = result.exit_code
        if code != 0:
            break
    return code, "".join(output)


def run_python(block: Block, module: types.ModuleType) -> str:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exec(compile(block.code, block.where, "exec"), module.__dict__)
    return stdout.getvalue()


def needed_recipes(blocks: list[Block]) -> set[str]:
    """Recipes that commands expected to succeed run (a page may register others itself, in Python)."""
    text = "\n".join(b.code for b in blocks if b.is_cli and b.marker not in ("skip", "exit"))
    return set(re.findall(r"refinekit run ([\w-]+)", text))


def run_page(page: Path, include_slow: bool) -> None:
    blocks = read_blocks(page)
    if not any(b.lang == "python" or b.is_cli for b in blocks):
        pytest.skip("no runnable blocks")
    missing = needed_recipes(blocks) - set(refinekit.list_recipes())
    if missing:
        pytest.skip(f"recipes {sorted(missing)} are not installed (pip install -e plugins/eyes -e plugins/digits)")
    module = types.ModuleType(f"docs_{page.stem.replace('-', '_')}")
    sys.modules[module.__name__] = module
    last_output: str | None = None
    last_where = ""
    try:
        for block in blocks:
            if block.marker in ("skip", "slow"):
                assert block.argument, f"{block.where}: say why: <!-- doc: {block.marker} (reason) -->"
                if block.marker == "skip" or not include_slow:
                    last_output, last_where = None, ""  # its output block, if any, is not checked either
                    continue
            if block.marker == "output":
                if last_where:
                    missing_line = expected_output_matches(block.code, last_output or "")
                    assert missing_line is None, (
                        f"{block.where}: the output of {last_where} lacks\n  {missing_line}\nIt printed:\n{last_output}"
                    )
                continue
            if block.marker == "file":
                Path(block.argument).write_text(block.code)
                continue
            if block.lang == "python":
                last_output, last_where = run_python(block, module), block.where
            elif block.is_cli:
                expected = int(block.argument) if block.marker == "exit" else 0
                code, last_output = run_cli(block)
                last_where = block.where
                assert code == expected, f"{block.where}: exit code {code}, expected {expected}:\n{last_output}"
    finally:
        sys.modules.pop(module.__name__, None)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_code_blocks_run(page: Path, docs_environment) -> None:
    run_page(page, include_slow=False)


SLOW_PAGES = [p for p in PAGES if any(b.marker == "slow" for b in read_blocks(p))]


@pytest.mark.slow
@pytest.mark.parametrize("page", SLOW_PAGES, ids=[str(p.relative_to(DOCS)) for p in SLOW_PAGES])
def test_page_code_blocks_run_with_slow_ones(page: Path, docs_environment) -> None:
    run_page(page, include_slow=True)


def test_output_blocks_follow_a_runnable_block() -> None:
    for page in PAGES:
        previous: Block | None = None
        for block in read_blocks(page):
            if block.marker == "output":
                assert previous is not None and (previous.lang == "python" or previous.is_cli), (
                    f"{block.where}: an output block must follow a python block or a refinekit command"
                )
            previous = block


def test_markers_are_understood() -> None:
    # A misspelt marker would silently do nothing, so every doc comment must be one the runner knows.
    for page in PAGES:
        for number, line in enumerate(page_lines(page), 1):
            if "<!-- doc:" in line:
                assert MARKER.match(line), f"{page.relative_to(ROOT)}:{number}: unknown marker {line.strip()!r}"


def test_expected_output_matching() -> None:
    output = "refinekit run x -> runs/x\n  synthetic: eyes-sim (16 simulated eyes,\nseed 0)\nDone: 4 steps."
    assert expected_output_matches("synthetic: eyes-sim (... simulated eyes, seed 0)\nDone: ... steps.", output) is None
    assert expected_output_matches("Done: ... steps.\nsynthetic:", output) == "synthetic:"  # order matters


def test_tiny_keeps_the_run_and_shrinks_its_size(tiny_domain) -> None:
    config = refinekit.resolve_config("tiny", overrides=["reg_weight=3", "schedule.steps=500"])
    small = tiny(config)
    assert (small.schedule.steps, small.batch_size, small.synthetic.limit, small.device) == (4, 4, 16, "cpu")
    assert tiny(refinekit.resolve_config("tiny", overrides=["schedule.steps=300"])).schedule.steps == 3
    assert small.refiner.options == {"features": 8, "blocks": 1}
    assert small.reg_weight == 3 and small.synthetic.options == config.synthetic.options


def test_slow_and_skipped_blocks_and_their_outputs(tmp_path, monkeypatch) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nprint('fast')\n```\n\n<!-- doc: output -->\n```text\nfast\n```\n\n"
        "<!-- doc: slow (raises, to show it ran) -->\n```python\nraise RuntimeError('slow block ran')\n```\n\n"
        "<!-- doc: output -->\n```text\nnever printed\n```\n\n"
        "<!-- doc: skip (never runs) -->\n```python\nraise RuntimeError('skipped block ran')\n```\n"
    )
    monkeypatch.chdir(tmp_path)
    run_page(page, include_slow=False)
    with pytest.raises(RuntimeError, match="slow block ran"):
        run_page(page, include_slow=True)
