"""The training loop: who updates what, the schedule, the history buffer, seeding, resume and NaN handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from refinekit.data.image_set import to_uint8
from refinekit.errors import NonFiniteLossError
from refinekit.plugins.hookspecs import hookimpl
from refinekit.training.loop import Trainer, TrainingInterrupted
from refinekit.training.setup import prepare, resolve_config
from refinekit.weights.files import CHECKPOINT_FORMAT, load_refiner, read_file

# The tiny recipe with small networks: the loop's behaviour, not the networks', is under test.
SMALL = [
    "refiner.options.features=8",
    "refiner.options.blocks=1",
    "discriminator.options.widths=[8, 8, 8, 8]",
]


@pytest.fixture(autouse=True)
def no_loss_plot(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loss figure is 70% of a tiny run's time and is checked in test_cli; these tests read the numbers."""
    monkeypatch.setattr("refinekit.training.loop.plot_losses", lambda metrics, out: None)


def make_trainer(out: Path, *overrides: str, resume: bool = False) -> Trainer:
    return prepare(resolve_config("tiny", overrides=[*SMALL, *overrides]), out, resume=resume)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> list[str]:
    return [k for k, v in module.state_dict().items() if not torch.equal(before[k], v)]


def losses_of(out: Path) -> list[dict[str, float]]:
    """metrics.jsonl without the timing column, which is the only thing allowed to differ."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        del row["images_per_second"]
    return rows


# -- who updates what ---------------------------------------------------------------


def test_discriminator_step_updates_d_only_and_never_backpropagates_into_r(tiny_domain, tmp_path) -> None:
    trainer = make_trainer(tmp_path)
    trainer.refiner_step(adversarial=False)  # R has gradients from its own step...
    trainer.refiner.zero_grad(set_to_none=True)  # ...cleared, so any gradient now comes from the D step
    r_before, d_before = snapshot(trainer.refiner), snapshot(trainer.discriminator)
    metrics = trainer.discriminator_step()
    assert changed(r_before, trainer.refiner) == []
    assert sorted(changed(d_before, trainer.discriminator)) == sorted(d_before)  # every D tensor moved
    assert all(p.grad is None for p in trainer.refiner.parameters())
    assert {"discriminator_loss", "d_acc_real", "d_acc_refined"} <= set(metrics)


def test_refiner_step_updates_r_only_and_leaves_d_trainable(tiny_domain, tmp_path) -> None:
    trainer = make_trainer(tmp_path)
    trainer.discriminator_step()
    trainer.discriminator.zero_grad(set_to_none=True)
    r_before, d_before = snapshot(trainer.refiner), snapshot(trainer.discriminator)
    metrics = trainer.refiner_step(adversarial=True)
    assert changed(d_before, trainer.discriminator) == []
    assert sorted(changed(r_before, trainer.refiner)) == sorted(r_before)
    assert all(p.grad is None for p in trainer.discriminator.parameters())  # D's gradients were not even computed
    assert all(p.requires_grad for p in trainer.discriminator.parameters())  # and D trains again afterwards
    assert metrics["refiner_loss"] == pytest.approx(metrics["refiner_reg"] * trainer.config.reg_weight + metrics["refiner_adv"], rel=1e-5)


def test_micro_batches_give_the_whole_batch_update(tiny_domain, tmp_path) -> None:
    updated = {}
    for micro_batch in (8, 3):  # the whole batch of 8, then chunks of 3, 3 and 2
        trainer = make_trainer(tmp_path / str(micro_batch), f"micro_batch={micro_batch}")
        trainer.discriminator_step()
        calls = []
        trainer.refiner.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
        metrics = trainer.refiner_step(adversarial=True)
        # Compare gradients, not weights: Adam's first step moves every weight by about lr whatever the gradient.
        gradients = {name: p.grad.clone() for name, p in trainer.refiner.named_parameters()}
        updated[micro_batch] = gradients, metrics, calls
    (whole, whole_metrics, whole_calls), (chunked, chunked_metrics, chunked_calls) = updated[8], updated[3]
    assert whole_calls == [8] and chunked_calls == [3, 3, 2]
    for name, value in whole.items():
        torch.testing.assert_close(chunked[name], value, rtol=1e-4, atol=1e-7, msg=name)
    assert chunked_metrics == pytest.approx(whole_metrics, rel=1e-5)


def test_pretraining_refiner_step_has_no_adversarial_term(tiny_domain, tmp_path) -> None:
    trainer = make_trainer(tmp_path)
    d_calls = []
    trainer.discriminator.register_forward_hook(lambda *args: d_calls.append(1))
    metrics = trainer.refiner_step(adversarial=False)
    assert d_calls == [] and "refiner_adv" not in metrics
    assert metrics["refiner_loss"] == pytest.approx(metrics["refiner_reg"] * trainer.config.reg_weight)


# -- Algorithm 1 -------------------------------------------------------------------


def test_phases_follow_the_schedule(tiny_domain, tmp_path) -> None:
    schedule = ["schedule.refiner_pretrain_steps=2", "schedule.discriminator_pretrain_steps=3", "schedule.steps=2",
                "schedule.k_g=2", "schedule.k_d=3"]
    trainer = make_trainer(tmp_path, *schedule)
    calls: list[str] = []
    refiner_step, discriminator_step = trainer.refiner_step, trainer.discriminator_step
    trainer.refiner_step = lambda adversarial: calls.append("R+adv" if adversarial else "R") or refiner_step(adversarial)
    trainer.discriminator_step = lambda: calls.append("D") or discriminator_step()
    result = trainer.fit()
    round_ = ["R+adv", "R+adv", "D", "D", "D"]
    assert calls == ["R", "R", "D", "D", "D", *round_, *round_]
    phases = [row["phase"] for row in losses_of(tmp_path)]
    assert phases == ["refiner-pretrain"] * 2 + ["discriminator-pretrain"] * 3 + ["adversarial"] * 2
    assert result.step == 7 == trainer.total_steps


def test_history_buffer_fills_and_feeds_half_of_every_d_batch(tiny_domain, tmp_path) -> None:
    trainer = make_trainer(tmp_path, "buffer_size=8")  # batch 8: half of it, 4 images, come from history
    pushed: list[torch.Tensor] = []
    sampled: list[torch.Tensor] = []
    d_inputs: list[torch.Tensor] = []
    push, sample = trainer.buffer.push, trainer.buffer.sample

    def record_push(images, generator):
        pushed.append(to_uint8(images))
        push(images, generator)

    def record_sample(count, generator):
        sampled.append(sample(count, generator))
        return sampled[-1]

    trainer.buffer.push, trainer.buffer.sample = record_push, record_sample
    trainer.discriminator.register_forward_pre_hook(lambda module, args: d_inputs.append(args[0].detach().clone()))
    trainer.fit()

    d_steps = 2 + 6  # discriminator pre-training plus one per adversarial round (k_d = 1)
    assert len(pushed) == d_steps and all(len(p) == 4 for p in pushed)  # half a batch of current images
    assert len(trainer.buffer) == 8 and len(sampled) == d_steps - 1  # the first D step has no history yet
    for i, history in enumerate(sampled, start=1):
        (fake,) = [x for x in d_inputs if len(x) == 8 and torch.equal(x[4:], history)]  # D saw it once
        assert torch.equal(to_uint8(fake[:4]), pushed[i])  # beside the current images, which then enter the buffer
    # history images are refined images of earlier D steps, and not only of the last one
    ages = []
    for i, history in enumerate(sampled, start=1):
        for image in to_uint8(history):
            sources = [j for j, batch in enumerate(pushed[:i]) if any(torch.equal(image, p) for p in batch)]
            assert sources, "a history image was never pushed"
            ages.append(i - max(sources))
    assert max(ages) >= 2


# -- reproducibility --------------------------------------------------------------


def test_same_seed_same_run_other_seed_other_run(tiny_domain, tmp_path) -> None:
    first = make_trainer(tmp_path / "a", "seed=3").fit()
    second = make_trainer(tmp_path / "b", "seed=3").fit()
    other = make_trainer(tmp_path / "c", "seed=4").fit()
    assert losses_of(tmp_path / "a") == losses_of(tmp_path / "b") != losses_of(tmp_path / "c")
    a, b = load_refiner(first.refiner_path).state_dict(), load_refiner(second.refiner_path).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["stem.weight"], load_refiner(other.refiner_path).state_dict()["stem.weight"])


class CrashAt:
    """A callback that kills the run after step ``step`` (as a crash or kill -9 would)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def __call__(self, trainer: Trainer, report) -> None:
        if report.step == self.step:
            raise RuntimeError("simulated crash")


def assert_same_run(a: Path, b: Path) -> None:
    assert losses_of(a) == losses_of(b)
    first, second = load_refiner(a / "refiner.safetensors"), load_refiner(b / "refiner.safetensors")
    for (name, x), y in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(x, y), name
    tensors_a, meta_a = read_file(a / "checkpoint.safetensors", CHECKPOINT_FORMAT)
    tensors_b, meta_b = read_file(b / "checkpoint.safetensors", CHECKPOINT_FORMAT)
    assert meta_a["step"] == meta_b["step"] and set(tensors_a) == set(tensors_b)
    for key in tensors_a:  # networks, both optimisers, the buffer and every RNG
        assert torch.equal(tensors_a[key], tensors_b[key]), key


def test_resume_after_a_crash_continues_bit_for_bit(tiny_domain, tmp_path) -> None:
    make_trainer(tmp_path / "whole").fit()
    crashed = make_trainer(tmp_path / "resumed")  # checkpoint_every=4: the last checkpoint is at step 8
    crashed.callbacks.append(CrashAt(10))
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.fit()
    assert len(losses_of(tmp_path / "resumed")) == 10
    resumed = make_trainer(tmp_path / "resumed", resume=True)
    assert resumed.step == 8
    assert len(losses_of(tmp_path / "resumed")) == 8  # steps 9 and 10 will be logged again, not twice
    resumed.fit()
    assert_same_run(tmp_path / "whole", tmp_path / "resumed")


def test_resume_after_ctrl_c_between_checkpoints(tiny_domain, tmp_path) -> None:
    make_trainer(tmp_path / "whole").fit()
    interrupted = make_trainer(tmp_path / "resumed")

    def press_ctrl_c(trainer: Trainer, report) -> None:
        if report.step == 5:  # what the SIGINT handler does
            trainer._interrupt = True

    interrupted.callbacks.append(press_ctrl_c)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 5"):
        interrupted.fit()
    resumed = make_trainer(tmp_path / "resumed", resume=True)
    assert resumed.step == 5
    resumed.fit()
    assert_same_run(tmp_path / "whole", tmp_path / "resumed")


def test_resume_with_more_steps_extends_the_run(tiny_domain, tmp_path) -> None:
    make_trainer(tmp_path / "whole", "schedule.steps=8").fit()
    make_trainer(tmp_path / "extended").fit()  # 6 rounds, then asked for 8
    make_trainer(tmp_path / "extended", "schedule.steps=8", resume=True).fit()
    assert_same_run(tmp_path / "whole", tmp_path / "extended")


# -- non-finite losses ---------------------------------------------------------------


class NaNAfter(torch.nn.Module):
    """An L1 self-regulariser that returns NaN from its ``start``-th call on."""

    calls = 0
    start = 6

    def __init__(self, channels: int = 1) -> None:
        super().__init__()

    def forward(self, refined: torch.Tensor, synthetic: torch.Tensor) -> torch.Tensor:
        NaNAfter.calls += 1
        loss = (refined - synthetic).abs().mean()
        return loss * float("nan") if NaNAfter.calls > NaNAfter.start else loss


class NaNPlugin:
    @staticmethod
    @hookimpl
    def register_regularizers(register) -> None:
        register("nan-after", NaNAfter, "becomes NaN")


@pytest.fixture
def nan_regularizer(tiny_domain):
    NaNAfter.calls = -1  # the run-time probe calls it once before step 1 (refinekit.plugins.probe)
    tiny_domain.register_plugin(NaNPlugin, "nan-plugin")
    yield
    tiny_domain.unregister_plugin("nan-plugin")


def test_nan_loss_stops_naming_step_and_loss_and_keeps_the_last_checkpoint(nan_regularizer, tmp_path) -> None:
    # R calls: steps 1-4 pre-train (calls 1-4), 5-6 train D, step 7 makes calls 5-6, step 8 makes call 7: NaN.
    trainer = make_trainer(tmp_path, "regularizer.name=nan-after")
    with pytest.raises(NonFiniteLossError, match=r"step 8 \(adversarial\): loss 'refiner_reg' is nan\. The last good checkpoint is kept in .*checkpoint.safetensors"):
        trainer.fit()
    _, metadata = read_file(tmp_path / "checkpoint.safetensors", CHECKPOINT_FORMAT)
    assert metadata["step"] == "4"
    refiner = load_refiner(tmp_path / "refiner.safetensors")
    assert all(torch.isfinite(p).all() for p in refiner.parameters())


def test_nan_loss_before_the_first_checkpoint_does_not_claim_one(nan_regularizer, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(NaNAfter, "start", 0)  # NaN from the very first pre-training step
    trainer = make_trainer(tmp_path, "regularizer.name=nan-after")
    with pytest.raises(NonFiniteLossError, match=r"step 1 \(refiner-pretrain\).*No checkpoint was written"):
        trainer.fit()
    assert not (tmp_path / "checkpoint.safetensors").exists()


def test_on_nonfinite_skip_counts_skipped_updates_and_keeps_weights_finite(nan_regularizer, tmp_path) -> None:
    trainer = make_trainer(tmp_path, "regularizer.name=nan-after", "on_nonfinite=skip")
    result = trainer.fit()
    assert result.step == 12
    # 12 R calls in the six adversarial rounds; calls 7 to 16 are NaN
    assert result.skipped_steps == 10
    assert all(torch.isfinite(p).all() for p in trainer.refiner.parameters())
    _, metadata = read_file(tmp_path / "checkpoint.safetensors", CHECKPOINT_FORMAT)
    assert metadata["skipped_steps"] == "10"
