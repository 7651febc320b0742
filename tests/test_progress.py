"""The run's up-front time estimate: it counts only the steps left."""

from __future__ import annotations

import pytest
import torch

from refinekit.training.progress import _duration, estimate_seconds, step_costs
from refinekit.training.setup import prepare, resolve_config

SMALL = ["refiner.options.features=8", "refiner.options.blocks=1", "discriminator.options.widths=[8, 8, 8, 8]"]


@pytest.fixture
def trainer(tiny_domain, tmp_path):
    return prepare(resolve_config("tiny", overrides=SMALL), tmp_path)


def test_the_estimate_counts_only_the_steps_left(trainer) -> None:
    assert estimate_seconds(trainer) > 0
    trainer.step = trainer.total_steps
    assert estimate_seconds(trainer) == 0


def test_the_estimate_leaves_the_runs_random_numbers_alone(tiny_domain, tmp_path) -> None:
    """Timing R's loss augments D's view; a run that shows the estimate must train as one that does not."""
    config = resolve_config("tiny", overrides=[*SMALL, "adversarial.augment=['translation','cutout']"])
    augmented = prepare(config, tmp_path)
    before = torch.get_rng_state()
    step_costs(augmented)
    assert torch.equal(torch.get_rng_state(), before)


def test_long_estimates_are_said_in_hours() -> None:
    assert _duration(6.6 * 60) == "6.6 min"
    assert _duration(119 * 60) == "119.0 min"
    assert _duration(160.5 * 3600) == "160.5 h"


# -- the display: readable at 80 columns and in a log ---------------------------------------------
import io
import re

from click.testing import CliRunner
from rich.console import Console

from refinekit.runtime.plain_progress import clock as _clock
from refinekit.training.progress import ProgressState, TrainingDisplay

METRICS = {"refiner_reg": 0.1234, "refiner_adv": 0.6931, "discriminator_loss": 1.2, "d_acc_real": 0.51, "d_acc_refined": 0.49}


@pytest.mark.parametrize("width", [80, 100, 60])
def test_the_live_lines_fit_the_terminal_with_bar_step_count_and_eta(width: int) -> None:
    state = ProgressState(total=6000, step=1234, phase="adversarial", metrics=METRICS, speed=512.3, eta=754)
    console = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    console.print(*state.live_lines(width))
    lines = console.file.getvalue().splitlines()
    assert len(lines) == 2 and all(len(line) <= width for line in lines)
    assert lines[0].startswith("adversarial") and "━" * 10 in lines[0] and "1234/6000" in lines[0]
    assert "ETA 12:34" in lines[0]
    assert "R reg 0.123" in lines[1] and "…" not in lines[1]  # losses are dropped whole, never cut


def test_the_live_lines_drop_speed_before_eta_and_eta_before_the_step_count() -> None:
    state = ProgressState(total=6000, step=1234, phase="refiner-pretrain", speed=512.3, eta=754)
    line, _ = state.live_lines(48)
    assert "1234/6000" in line.plain and "img/s" not in line.plain and len(line.plain) <= 48


def test_without_a_terminal_a_plain_line_is_printed_every_interval_and_at_phase_changes(tiny_domain, tmp_path) -> None:
    from refinekit.training.loop import StepReport
    from refinekit.training.setup import prepare, resolve_config

    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=False)
    display = TrainingDisplay(console, plain_every=3600)
    assert not display.live_mode
    trainer = prepare(resolve_config("tiny", overrides=SMALL), tmp_path)
    display.describe(trainer, "tiny", None)
    with display:
        for step, phase in [(1, "refiner-pretrain"), (2, "refiner-pretrain"), (5, "discriminator-pretrain"), (12, "adversarial")]:
            display.update(trainer, StepReport(step, 12, phase, METRICS, 100.0))
    plain = [line for line in out.getvalue().splitlines() if line.startswith("step ")]
    # step 1 (first), 5 and 12 (phase changes; 12 is also the last); step 2 is within the hour
    assert [line.split()[1] for line in plain] == ["1/12", "5/12", "12/12"]
    assert "D pre-train" in plain[1] and "ETA" in plain[1] and "elapsed" in plain[1] and "\x1b" not in out.getvalue()


def test_refinekit_run_into_a_file_prints_data_preparation_and_plain_progress(tiny_domain, tmp_path, monkeypatch) -> None:
    from refinekit.cli.app import main

    monkeypatch.setenv("REFINEKIT_PROGRESS_SECONDS", "0")
    args = ["run", "tiny", "--out", str(tmp_path / "run")] + [x for kv in SMALL for x in ("--set", kv)]
    result = CliRunner().invoke(main, args)  # CliRunner's output is not a terminal
    assert result.exit_code == 0, result.output
    text = result.output
    assert "preparing synthetic data: tiny" in text and "preparing real data: tiny" in text and "data ready in" in text
    steps = re.findall(r"^step (\d+)/12 ", text, flags=re.M)
    assert steps == [str(i) for i in range(1, 13)]
    assert text.index("data ready") < text.index("step 1/12") < text.index("Done: 12 steps")
    assert all(len(line) <= 200 for line in text.splitlines())


def test_clock() -> None:
    assert _clock(59.6) == "1:00" and _clock(3600) == "1:00:00"


def test_on_an_80_column_terminal_the_live_display_fits(tiny_domain, tmp_path) -> None:
    from refinekit.training.loop import StepReport
    from refinekit.training.setup import prepare, resolve_config

    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    display = TrainingDisplay(console)
    assert display.live_mode
    trainer = prepare(resolve_config("tiny", overrides=SMALL), tmp_path)
    display.describe(trainer, "tiny", None)
    with display:
        display.update(trainer, StepReport(7, 12, "adversarial", METRICS, 1234.0))
        display.live.refresh()
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    lines = [line for line in screen.replace("\r", "\n").splitlines() if line.strip()]
    assert all(len(line) <= 80 for line in lines)
    live = [line for line in lines if line.startswith("adversarial")]
    assert live and "7/12" in live[-1] and "ETA" in live[-1] and "━" in live[-1]
    assert not any(line.startswith("step ") for line in lines), "no plain lines on a terminal"


def test_a_long_preparation_says_it_is_alive_in_a_log_and_a_failed_one_claims_no_data() -> None:
    import time

    out = io.StringIO()
    display = TrainingDisplay(Console(file=out, width=80, force_terminal=False), plain_every=0.1)
    with display.preparing() as say:
        say("preparing synthetic data: eyes-sim")
        time.sleep(0.5)
    text = out.getvalue()
    assert "preparing synthetic data: eyes-sim ..." in text and "still preparing synthetic data: eyes-sim (" in text
    assert text.rstrip().splitlines()[-1].startswith("data ready in")
    out.truncate(0)
    with pytest.raises(RuntimeError):
        with display.preparing():
            raise RuntimeError("no data")
    assert "data ready" not in out.getvalue()
