"""SimGAN training: the paper's Algorithm 1, as a plain PyTorch loop over :mod:`refinekit.training.simgan`.

1. Pre-train R on self-regularisation alone.
2. Pre-train D against the (pre-trained) refiner's output.
3. Repeat: k_g refiner updates, then k_d discriminator updates, where D sees half
   current refined images and half from the image history buffer.

A *step* is one iteration of the current phase (one round in phase 3).
Checkpoints are taken between steps, so a resumed run continues bit-for-bit.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import signal
import time
import warnings
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from refinekit.config import TrainConfig, config_to_json
from refinekit.data.image_set import BatchSampler, ImageSet
from refinekit.errors import ConfigError, NonFiniteLossError
from refinekit.plugins.probe import probe_components
from refinekit.plugins.registry import create_discriminator, create_refiner, create_regularizer
from refinekit.runtime import distributed
from refinekit.runtime.chunks import batch_independent, images_per_chunk
from refinekit.runtime.precision import Precision, resolve_device, resolve_precision
from refinekit.training import simgan
from refinekit.training.history_buffer import HistoryBuffer
from refinekit.training.lecam import LeCam
from refinekit.training.run_figures import plot_losses, save_sample_grid
from refinekit.training.state import CHECKPOINT_NAME, REFINER_NAME, TrainingState

PHASES = ("refiner-pretrain", "discriminator-pretrain", "adversarial")


class TrainingInterrupted(Exception):
    """Ctrl-C during training: a checkpoint was saved at ``step``."""

    def __init__(self, step: int, out_dir: Path) -> None:
        super().__init__(f"interrupted at step {step}; checkpoint saved in {out_dir}")
        self.step = step
        self.out_dir = out_dir


class StopRequested(BaseException):
    """Ctrl-C inside :meth:`Trainer.interruptible`: the callback's work ends at once, and the run stops.

    A ``BaseException``, as ``KeyboardInterrupt`` is, so that no ``except Exception`` in the
    interrupted work swallows it.
    """


@dataclass
class StepReport:
    """What the progress display and metrics.jsonl receive after each step."""

    step: int
    total: int
    phase: str
    metrics: dict[str, float]
    images_per_second: float


@dataclass
class TrainResult:
    """Where a finished run's outputs are, and its last metrics."""

    out_dir: Path
    refiner_path: Path
    checkpoint_path: Path
    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    skipped_steps: int = 0


def _releases_folder_lock(fit: Callable[["Trainer"], TrainResult]) -> Callable[["Trainer"], TrainResult]:
    """The run folder's lock (taken by :func:`refinekit.training.setup.prepare`) is let go when ``fit`` returns or raises."""

    @functools.wraps(fit)
    def wrapper(self: "Trainer") -> TrainResult:
        try:
            return fit(self)
        finally:
            lock = getattr(self, "folder_lock", None)
            if lock is not None:
                lock.release()

    return wrapper


class Trainer(TrainingState):
    """Runs one SimGAN training job into ``out_dir``.

    Args:
        config: the resolved configuration.
        synthetic: labelled synthetic images (annotations are not used by training).
        real: unlabelled real images.
        real_rows: the rows of ``real`` that D may see (None: all); the rest are held out for evaluation.
        out_dir: where checkpoints, samples and metrics go.
        callbacks: called as ``callback(trainer, report)`` after every step (progress
            displays, evaluation during training).
    """

    def __init__(
        self,
        config: TrainConfig,
        synthetic: ImageSet,
        real: ImageSet,
        out_dir: Path,
        callbacks: Sequence[Callable[["Trainer", StepReport], None]] = (),
        real_rows: np.ndarray | None = None,
    ) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.callbacks = list(callbacks)
        self.topology = distributed.setup(resolve_device(config.device))
        self.device = _rank_device(resolve_device(config.device), self.topology)
        self.precision: Precision = resolve_precision(config.precision, self.device)
        world = self.topology.world_size
        if config.batch_size % world or config.buffer_size % world or config.batch_size // world < 2:
            raise ConfigError(
                f"batch_size ({config.batch_size}) and buffer_size ({config.buffer_size}) are totals over the "
                f"{world} torchrun processes and must divide evenly by {world}, with at least 2 images per process"
            )
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        channels = config.image.channels
        self.refiner = create_refiner(config.refiner.name, channels=channels, **config.refiner.options)
        if config.adversarial.r1_weight and self.topology.distributed:
            raise ConfigError(
                "adversarial.r1_weight needs a second backward pass through D, which torch DDP does not support; "
                "train with one process or set adversarial.r1_weight=0"
            )
        self.discriminator = create_discriminator(
            config.discriminator.name, channels=channels, **config.discriminator.options
        )
        if config.adversarial.feature_matching and not hasattr(self.discriminator, "logits_and_features"):
            raise ConfigError(
                f"adversarial.feature_matching needs D's features, and the discriminator "
                f"'{config.discriminator.name}' has no logits_and_features(x) method returning (logits, [feature "
                "maps]): set adversarial.feature_matching=0, or choose local-patch, global or multi-scale"
            )
        self.regularizer = create_regularizer(config.regularizer.name, channels=channels, **config.regularizer.options)
        memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        for module in (self.refiner, self.discriminator, self.regularizer):
            module.to(self.device, memory_format=memory_format)
        # The averaged refiner (section "refiner_ema" of the config) is what samples and exports show.
        self.refiner_ema = copy.deepcopy(self.refiner).requires_grad_(False).eval() if config.refiner_ema else None
        lecam_weight = config.adversarial.lecam_weight
        self.lecam = LeCam(lecam_weight).to(self.device) if lecam_weight else None
        self.memory_format = memory_format
        if self.topology.distributed:
            torch.manual_seed(self.topology.seed(config.seed))  # after the weights: ranks differ in dropout & co.
        self.opt_refiner = self._optimizer(self.refiner, config.optim.lr_refiner)
        self.opt_discriminator = self._optimizer(self.discriminator, config.optim.lr_discriminator)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.needs_scaler)
        # Each rank draws its share of the batch from its own seed stream and keeps its own history buffer.
        self.local_batch = config.batch_size // world
        seed = self.topology.seed
        self.synthetic = BatchSampler(synthetic, self.local_batch, self.device, seed(config.seed + 1))
        self.real = BatchSampler(real, self.local_batch, self.device, seed(config.seed + 2), rows=real_rows)
        local_buffer = config.buffer_size // world
        self.buffer = HistoryBuffer(local_buffer, synthetic.shape, self.device) if local_buffer else None
        self.buffer_rng = torch.Generator().manual_seed(seed(config.seed + 3))
        image = config.image
        self.micro_batch = config.micro_batch or images_per_chunk(
            self.device, image.height, image.width, self.local_batch
        )
        # Chunks give the whole batch's gradient only if every image's output depends on that image alone:
        # batch norm (timm-unet's encoder, for one) normalises by the chunk instead of the batch.
        dependent = [n for n, m in (("refiner", self.refiner), ("discriminator", self.discriminator),
                                    ("regularizer", self.regularizer)) if not batch_independent(m)]
        if dependent and self.micro_batch < self.local_batch:
            if config.micro_batch:
                warnings.warn(
                    f"micro_batch={config.micro_batch} is ignored: the {' and '.join(dependent)} use batch "
                    "statistics (batch norm), so running the batch in chunks would change the update",
                    stacklevel=2,
                )
            self.micro_batch = self.local_batch
        self.step = 0
        self.skipped_steps = 0
        self._fixed_synthetic = torch.from_numpy(synthetic.images[: min(8, len(synthetic))].copy())
        shown = np.arange(len(real)) if real_rows is None else np.asarray(real_rows)
        self._fixed_real = torch.from_numpy(real.images[np.sort(shown[:8])])
        self._interrupt = False
        self._interruptible = False
        self._stop_agreed = False
        self._build_forwards()
        self.probe_components()  # before anything trains or is timed: a broken plugin is named at once

    def _build_forwards(self) -> None:
        """The callables each update runs: DDP-wrapped where gradients are averaged, compiled if asked.

        R's update trains R (averaged over ranks) through a frozen D; D's update
        trains D on R's output without autograd. A network that is not trained in
        an update runs unwrapped there, so DDP never waits for gradients it will
        not get.
        """
        maybe_compile = torch.compile if self.config.compile else (lambda module: module)
        refiner, discriminator = maybe_compile(self.refiner), maybe_compile(self.discriminator)
        self._infer_refiner, self._frozen_discriminator = refiner, discriminator
        self._train_refiner, self._train_discriminator = refiner, discriminator
        self._refiner_ddp = None
        if self.topology.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self._refiner_ddp = DistributedDataParallel(self.refiner, device_ids=ids)
            self._train_refiner = maybe_compile(self._refiner_ddp)
            self._train_discriminator = maybe_compile(DistributedDataParallel(self.discriminator, device_ids=ids))

    @property
    def is_main(self) -> bool:
        """True in the process that writes outputs (always, without torchrun)."""
        return self.topology.is_main

    def _optimizer(self, module: nn.Module, lr: float) -> torch.optim.Optimizer:
        optim = self.config.optim
        # One fused kernel over all parameters instead of a Python loop of small ops per parameter
        # (about a tenth of a batch-16 round on CPU); CPU and CUDA both have it.
        fused = {"fused": True} if self.device.type in ("cpu", "cuda") else {}
        if optim.name == "adam":
            return torch.optim.Adam(module.parameters(), lr=lr, betas=optim.betas, **fused)
        return torch.optim.SGD(module.parameters(), lr=lr, momentum=optim.momentum, **fused)

    # -- schedule ----------------------------------------------------------
    @property
    def total_steps(self) -> int:
        s = self.config.schedule
        return s.refiner_pretrain_steps + s.discriminator_pretrain_steps + s.steps

    def phase_of(self, step: int) -> str:
        s = self.config.schedule
        if step < s.refiner_pretrain_steps:
            return PHASES[0]
        if step < s.refiner_pretrain_steps + s.discriminator_pretrain_steps:
            return PHASES[1]
        return PHASES[2]

    def learning_rate_scale(self, step: int) -> float:
        """The factor on both base learning rates at ``step``: 1, then linear towards 0 over the last rounds.

        A GAN's last updates fight over the same few patches; shrinking the steps
        at the end lets R settle where D's gradient averages out instead of
        chasing it (CycleGAN's schedule). It is a function of the step alone, so
        a resumed run takes exactly the steps it would have taken.
        """
        s = self.config.schedule
        adversarial_round = step - s.refiner_pretrain_steps - s.discriminator_pretrain_steps
        first_decayed = self.config.optim.decay_from * s.steps
        if adversarial_round < first_decayed:
            return 1.0
        return (s.steps - adversarial_round) / (s.steps - first_decayed)

    def _schedule_learning_rates(self) -> None:
        scale = self.learning_rate_scale(self.step)
        optim = self.config.optim
        for optimizer, base in ((self.opt_refiner, optim.lr_refiner), (self.opt_discriminator, optim.lr_discriminator)):
            for group in optimizer.param_groups:
                group["lr"] = base * scale

    # -- one update each ---------------------------------------------------
    def _batch(self, sampler: BatchSampler) -> torch.Tensor:
        return sampler.next()[1].contiguous(memory_format=self.memory_format)

    def refiner_step(self, adversarial: bool) -> dict[str, float]:
        """One R update on :func:`~refinekit.training.simgan.refiner_loss`, adversarial after pre-training.

        The batch runs in chunks of at most ``micro_batch`` images, each chunk's
        loss weighted by its share of the batch and backpropagated on its own.
        Every loss is a mean over images, so the summed gradient is the whole
        batch's; only the working set shrinks. Feature matching is the exception:
        it compares batch means, so each chunk's refined mean meets the whole real
        batch's (on a CPU an eye or digit batch is one chunk). The chunks, with DDP's gradient
        sync in the last one, are why this is not the plain ``simgan.refiner_step``.
        """
        synthetic = self._batch(self.synthetic)
        options = self.config.adversarial
        matching = options.feature_matching if adversarial else 0.0
        real = self._batch(self.real) if matching else None
        chunks = synthetic.split(self.micro_batch)
        self.opt_refiner.zero_grad(set_to_none=True)
        totals: dict[str, torch.Tensor] = {}
        for index, chunk in enumerate(chunks):
            share = len(chunk) / len(synthetic)
            with self._refiner_gradient_sync(last=index == len(chunks) - 1):
                with self.precision.autocast():
                    metrics = simgan.refiner_loss(
                        self._train_refiner, self.regularizer, chunk,
                        discriminator=self._frozen_discriminator if adversarial else None,
                        reg_weight=self.config.reg_weight, augment=options.augment, loss=options.loss,
                        real=real, feature_matching=matching,
                    )
                self.scaler.scale(metrics["refiner_loss"] * share).backward()
            for name, value in metrics.items():
                totals[name] = totals.get(name, 0) + value.detach().float() * share
        result = self._apply(self.opt_refiner, totals)
        self._update_ema(adversarial, result)
        return result

    def _update_ema(self, adversarial: bool, metrics: dict[str, float]) -> None:
        """Average R's weights after an adversarial update that was applied.

        During pre-training R has one fixed target, so averaging would only lag:
        the average copies R until the adversarial phase begins.
        """
        if self.refiner_ema is None or not all(math.isfinite(value) for value in metrics.values()):
            return
        simgan.update_average(self.refiner_ema, self.refiner, self.config.refiner_ema if adversarial else 0.0)

    def _refiner_gradient_sync(self, last: bool) -> AbstractContextManager[None]:
        """Under torchrun, average R's gradients over ranks once per update: in its last chunk's backward."""
        if self._refiner_ddp is None or last:
            return nullcontext()
        return self._refiner_ddp.no_sync()

    def discriminator_step(self) -> dict[str, float]:
        """One D update on half current refined images and half history images (section 2.3)."""
        synthetic = self._batch(self.synthetic)
        real = self._batch(self.real)
        options = self.config.adversarial
        with self.precision.autocast():
            refined, current = simgan.discriminator_batch(
                self._infer_refiner, synthetic, self.buffer, self.buffer_rng, micro_batch=self.micro_batch
            )
            # augmentation draws from torch's generator, which the checkpoint saves, not from buffer_rng
            metrics = simgan.discriminator_loss(
                self._discriminate, refined, real, augment=options.augment, loss=options.loss,
                r1_weight=options.r1_weight, real_label=options.real_label, lecam=self.lecam,
            )
        self.opt_discriminator.zero_grad(set_to_none=True)
        self.scaler.scale(metrics["discriminator_loss"]).backward()
        result = self._apply(self.opt_discriminator, metrics)
        if self.buffer is not None:
            self.buffer.push(current, self.buffer_rng)
        return result

    def _discriminate(self, images: torch.Tensor) -> torch.Tensor:
        """D's training forward, on images in the run's memory layout (augmentation may change it)."""
        return self._train_discriminator(images.contiguous(memory_format=self.memory_format))

    def _apply(self, optimizer: torch.optim.Optimizer, metrics: dict[str, torch.Tensor]) -> dict[str, float]:
        """After the backward: read every metric in one transfer, and step unless a loss is non-finite.

        The backward is queued before the metrics are read, so on a GPU that read,
        the update's only host sync, overlaps the backward. Under torchrun the same
        transfer averages the metrics over ranks (every rank then takes the same
        skip/stop decision) and carries the Ctrl-C flag (every rank stops at the
        same step). Gradients of a non-finite loss are discarded unused.
        """
        values = [value.detach().float().reshape(()) for value in metrics.values()]
        if self.topology.distributed:
            values.append(torch.full((), float(self._interrupt), device=self.device))
            reduced = distributed.all_reduce_sum(torch.stack(values)).div_(self.topology.world_size).tolist()
            self._stop_agreed = reduced.pop() > 0
        else:
            reduced = torch.stack(values).tolist()
        floats = dict(zip(metrics, reduced))
        bad = [name for name, value in floats.items() if not math.isfinite(value)]
        if bad:
            optimizer.zero_grad(set_to_none=True)
            if self.config.on_nonfinite == "skip":
                self.skipped_steps += 1
                return floats
            raise NonFiniteLossError(
                # 1-based, as metrics.jsonl and the progress bar count steps
                f"step {self.step + 1} ({self.phase_of(self.step)}): loss '{bad[0]}' is {floats[bad[0]]}. "
                f"{self._last_good_checkpoint()} Lower the learning rate, "
                "use --precision fp32, or --set on_nonfinite=skip to skip such steps."
            )
        self.scaler.step(optimizer)
        self.scaler.update()
        return floats

    def _last_good_checkpoint(self) -> str:
        """Where a stopped run can resume from, said only if that checkpoint exists."""
        path = self.out_dir / CHECKPOINT_NAME
        if path.exists():
            return f"The last good checkpoint is kept in {path}; --resume continues from it."
        return "No checkpoint was written before this step, so nothing was lost."

    def run_step(self) -> tuple[str, dict[str, float], int]:
        """Run the current step; returns (phase, metrics, images processed)."""
        phase = self.phase_of(self.step)
        schedule = self.config.schedule
        self._schedule_learning_rates()
        batch = self.config.batch_size
        if phase == PHASES[0]:
            return phase, self.refiner_step(adversarial=False), batch
        if phase == PHASES[1]:
            return phase, self.discriminator_step(), batch
        metrics: dict[str, float] = {}
        for _ in range(schedule.k_g):
            metrics.update(self.refiner_step(adversarial=True))
        for _ in range(schedule.k_d):
            metrics.update(self.discriminator_step())
        return phase, metrics, batch * (schedule.k_g + schedule.k_d)

    # -- the loop ----------------------------------------------------------
    @_releases_folder_lock
    def fit(self) -> TrainResult:
        """Train to the end of the schedule, checkpointing as configured.

        Under torchrun every rank runs this; only rank 0 writes files, and every
        rank takes part in each checkpoint (it gathers their states).
        """
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(config_to_json(self.config) + "\n")
            if self.step == 0:  # a fresh start: drop lines of an earlier attempt killed before its first checkpoint
                (self.out_dir / "metrics.jsonl").unlink(missing_ok=True)
        metrics: dict[str, float] = {}
        tick, images = time.perf_counter(), 0
        saved = False
        with self._sigint_saves():
            while self.step < self.total_steps:
                if self._stop_requested():
                    self.save_checkpoint()
                    raise TrainingInterrupted(self.step, self.out_dir)
                phase, metrics, count = self.run_step()
                self.step += 1
                images += count
                now = time.perf_counter()
                speed = images / max(now - tick, 1e-9)
                if self.step % self.config.log_every == 0 or self.step == self.total_steps:
                    if self.is_main:
                        self._log(phase, metrics, speed)
                    tick, images = now, 0
                report = StepReport(self.step, self.total_steps, phase, metrics, speed)
                for callback in self.callbacks:
                    callback(self, report)
                if self.is_main and (self.step % self.config.sample_every == 0 or self.step == self.total_steps):
                    self.save_samples()
                if self.step % self.config.checkpoint_every == 0 or self.step == self.total_steps:
                    self.save_checkpoint()
                    saved = True
        if not saved:  # nothing to train (a finished run resumed, or an empty schedule): still leave the outputs
            self.save_checkpoint()
        if self.is_main:
            plot_losses(self.out_dir / "metrics.jsonl", self.out_dir / "losses.png")
        return TrainResult(
            out_dir=self.out_dir,
            refiner_path=self.out_dir / REFINER_NAME,
            checkpoint_path=self.out_dir / CHECKPOINT_NAME,
            step=self.step,
            metrics=metrics,
            skipped_steps=self.skipped_steps,
        )

    def probe_components(self) -> None:
        """Check R, D and the regulariser on 2 images before step 1: a plugin's broken contract is named at once."""
        from refinekit.data.image_set import to_float

        c = self.config
        images = to_float(self._fixed_synthetic[:2]).to(self.device).contiguous(memory_format=self.memory_format)
        probe_components(
            self.refiner, self.discriminator, self.regularizer, images,
            {"refiner": c.refiner.name, "discriminator": c.discriminator.name, "regularizer": c.regularizer.name},
        )

    def _stop_requested(self) -> bool:
        """Ctrl-C was pressed: alone, here; under torchrun, on any rank as of the last update (all agree)."""
        return self._stop_agreed if self.topology.distributed else self._interrupt

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """Within it, Ctrl-C ends the work at once by raising :class:`StopRequested`; the run then stops.

        For a callback's long work that changes no training state and writes no file, such as an
        evaluation that takes minutes on a busy CPU: between steps the state is already consistent,
        so nothing needs that work to finish before the checkpoint is saved.
        """
        if self._interrupt:
            raise StopRequested
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False

    @contextmanager
    def _sigint_saves(self) -> Iterator[None]:
        """Ctrl-C asks the loop to stop at the next step boundary, where the state is consistent."""

        def handler(signum: int, frame: object) -> None:
            if self._interrupt:  # a second Ctrl-C stops at once
                raise KeyboardInterrupt
            self._interrupt = True
            if self._interruptible:
                raise StopRequested

        try:
            previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: leave signals alone
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _log(self, phase: str, metrics: dict[str, float], speed: float) -> None:
        line = {"step": self.step, "phase": phase, **{k: round(v, 6) for k, v in metrics.items()}}
        line["images_per_second"] = round(speed, 1)
        with open(self.out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")

    # -- outputs -----------------------------------------------------------
    @torch.no_grad()
    def refine(self, images: torch.Tensor) -> torch.Tensor:
        """Refine a float batch in [-1, 1] with the exported refiner (eval mode, no autograd)."""
        refiner = self.exported_refiner
        was_training = refiner.training
        refiner.eval()
        try:
            with self.precision.autocast():
                return refiner(images.to(self.device).contiguous(memory_format=self.memory_format)).float()
        finally:  # also when Ctrl-C ends an evaluation mid-batch (:meth:`interruptible`)
            refiner.train(was_training)

    @property
    def exported_refiner(self) -> nn.Module:
        """The refiner that samples and exports show: the weight average when there is one."""
        return self.refiner_ema if self.refiner_ema is not None else self.refiner

    def save_samples(self) -> None:
        from refinekit.data.image_set import to_float

        synthetic = to_float(self._fixed_synthetic)
        refined = self.refine(synthetic).cpu()
        path = self.out_dir / "samples" / f"step_{self.step:07d}.png"
        save_sample_grid(path, synthetic, refined, to_float(self._fixed_real))

def _rank_device(device: torch.device, topology: distributed.Topology) -> torch.device:
    """Under torchrun each process trains on the GPU of its local rank."""
    if device.type == "cuda" and topology.distributed:
        return torch.device("cuda", topology.local_rank)
    return device
