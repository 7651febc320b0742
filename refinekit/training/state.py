"""What a training checkpoint holds, and how the Trainer writes and restores it.

One file holds the whole state (NVlabs/imaginaire does the same; weights-only
checkpoints are what CycleGAN's users filed resume issues about): both networks
and the weight average, both optimisers, the gradient scaler, the step, every
RNG and the image history buffer, so a resumed run continues bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from refinekit.config import TrainConfig, config_to_json
from refinekit.data.image_set import BatchSampler
from refinekit.errors import CheckpointError
from refinekit.runtime import distributed
from refinekit.runtime.precision import Precision, precision_named
from refinekit.training.history_buffer import HistoryBuffer
from refinekit.weights.files import (
    CHECKPOINT_FORMAT,
    FORMAT_VERSION,
    atomic_save,
    export_refiner,
    flatten_state,
    load_optimizer_state,
    read_count,
    read_file,
    unflatten_state,
)

CHECKPOINT_NAME = "checkpoint.safetensors"
REFINER_NAME = "refiner.safetensors"


class TrainingState:
    """The Trainer's checkpointing: the state it holds, saved and restored (a base of :class:`Trainer`)."""

    config: TrainConfig
    out_dir: Path
    topology: distributed.Topology
    device: torch.device
    precision: Precision
    refiner: nn.Module
    discriminator: nn.Module
    refiner_ema: nn.Module | None
    lecam: nn.Module | None
    opt_refiner: torch.optim.Optimizer
    opt_discriminator: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    synthetic: BatchSampler
    real: BatchSampler
    buffer: HistoryBuffer | None
    buffer_rng: torch.Generator
    step: int
    skipped_steps: int
    is_main: bool
    exported_refiner: nn.Module

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """The whole training state as safetensors tensors plus JSON metadata.

        Under torchrun this is a collective: rank 0 gathers every rank's RNG states
        and history buffer (rank k's under ``rankK.``; rank 0's keep the
        single-process names), so one atomically written file is always a
        consistent snapshot of the whole job. The networks and optimisers are
        identical on every rank and stored once; each rank's parameter digest goes
        into the metadata as a check. Other ranks get their own state back.
        """
        tensors: dict[str, torch.Tensor] = {}
        for prefix, module in self._checkpointed_modules():
            for key, value in module.state_dict().items():
                tensors[f"{prefix}.{key}"] = value
        skeleton = {
            "opt_refiner": flatten_state("opt_refiner", self.opt_refiner.state_dict(), tensors),
            "opt_discriminator": flatten_state("opt_discriminator", self.opt_discriminator.state_dict(), tensors),
            "scaler": self.scaler.state_dict(),
        }
        metadata = {
            "format": CHECKPOINT_FORMAT,
            "format_version": FORMAT_VERSION,
            "step": str(self.step),
            "skipped_steps": str(self.skipped_steps),
            "config": config_to_json(self.config),
            "state": json.dumps(skeleton),
            "precision": self.precision.name,
            "world_size": str(self.topology.world_size),
        }
        gathered = distributed.gather_to_main((self._rank_state(), self._parameter_digest()))
        if gathered is None:  # not rank 0: nothing is written here
            tensors.update(self._rank_state())
            return tensors, metadata
        for rank, (state, _) in enumerate(gathered):
            prefix = f"rank{rank}." if rank else ""
            tensors.update({prefix + key: value for key, value in state.items()})
        if self.topology.distributed:
            metadata["replica_digests"] = json.dumps([digest for _, digest in gathered])
        return tensors, metadata

    def _checkpointed_modules(self) -> list[tuple[str, nn.Module]]:
        """The networks whose weights a checkpoint holds, by key prefix."""
        modules: list[tuple[str, nn.Module]] = [("refiner", self.refiner), ("discriminator", self.discriminator)]
        if self.refiner_ema is not None:
            modules.append(("refiner_ema", self.refiner_ema))
        return modules

    def _rank_state(self) -> dict[str, torch.Tensor]:
        """What differs between ranks: every RNG, the history buffer and LeCam's anchors."""
        state = {
            "rng.torch": torch.get_rng_state(),
            "rng.synthetic": self.synthetic.state(),
            "rng.real": self.real.state(),
            "rng.buffer": self.buffer_rng.get_state(),
        }
        if self.device.type == "cuda":
            state["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        if self.buffer is not None:
            state.update({f"buffer.{key}": value.cpu() for key, value in self.buffer.state().items()})
        if self.lecam is not None:  # each rank's anchors follow its own batches
            state.update({f"lecam.{key}": value.cpu() for key, value in self.lecam.state_dict().items()})
        return state

    def _parameter_digest(self) -> str:
        """SHA-256 of R's and D's parameters: equal on every rank while DDP keeps the replicas in step."""
        digest = hashlib.sha256()
        for module in (self.refiner, self.discriminator):
            for param in module.parameters():
                digest.update(param.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def save_checkpoint(self) -> None:
        """Write the checkpoint and the exported refiner, each atomically (rank 0; a collective under torchrun)."""
        tensors, metadata = self.state_tensors()
        if not self.is_main:
            return
        digests = json.loads(metadata.get("replica_digests", "[]"))
        if len(set(digests)) > 1:
            warnings.warn(
                f"step {self.step}: the torchrun replicas' weights differ ({len(set(digests))} versions); "
                "the checkpoint keeps rank 0's. A component may update weights outside the optimiser.",
                stacklevel=2,
            )
        atomic_save(tensors, metadata, self.out_dir / CHECKPOINT_NAME)
        c = self.config
        export_refiner(
            self.exported_refiner,
            self.out_dir / REFINER_NAME,
            c.refiner.name,
            c.refiner.options,
            c.image.channels,
            (c.image.height, c.image.width),
        )

    def load_checkpoint(self, path: Path) -> None:
        """Restore the whole state written by :meth:`save_checkpoint`; each rank takes its own RNGs and buffer."""
        tensors, metadata = read_file(path, CHECKPOINT_FORMAT)
        saved_world = read_count(path, metadata, "world_size", "1")
        if saved_world != self.topology.world_size:
            raise CheckpointError(
                f"{path}: written by {saved_world} training process(es) but this run has "
                f"{self.topology.world_size}; resume with the same torchrun --nproc_per_node ({saved_world}), "
                "because each process's RNG streams and history buffer are part of the state"
            )
        prefix = f"rank{self.topology.rank}." if self.topology.rank else ""
        try:
            skeleton = json.loads(metadata["state"])
            for name, module in self._checkpointed_modules():
                module.load_state_dict({k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + ".")})
            load_optimizer_state(self.opt_refiner, unflatten_state(skeleton["opt_refiner"], tensors))
            load_optimizer_state(self.opt_discriminator, unflatten_state(skeleton["opt_discriminator"], tensors))
            for optimizer in (self.opt_refiner, self.opt_discriminator):
                _match_parameter_layouts(optimizer)
            self.scaler.load_state_dict(skeleton["scaler"])
            torch.set_rng_state(tensors[prefix + "rng.torch"])
            self.synthetic.load_state(tensors[prefix + "rng.synthetic"])
            self.real.load_state(tensors[prefix + "rng.real"])
            self.buffer_rng.set_state(tensors[prefix + "rng.buffer"])
            if prefix + "rng.cuda" in tensors and self.device.type == "cuda":
                torch.cuda.set_rng_state(tensors[prefix + "rng.cuda"], self.device)
            if self.buffer is not None and prefix + "buffer.size" in tensors:
                self.buffer.load_state(
                    {"images": tensors[prefix + "buffer.images"], "size": tensors[prefix + "buffer.size"]}
                )
            if self.lecam is not None:
                self.lecam.load_state_dict(
                    {key: tensors[f"{prefix}lecam.{key}"] for key in self.lecam.state_dict()}
                )
            self.step = read_count(path, metadata, "step")  # untrusted: a negative step would rewrite metrics.jsonl
            self.skipped_steps = read_count(path, metadata, "skipped_steps", "0")
        except (KeyError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: does not match this run's networks or settings ({exc})") from None
        if self.config.precision == "auto" and "precision" in metadata:
            # auto may measure differently today; the run continues in the precision it started with
            self.precision = precision_named(metadata["precision"], self.device, "auto, as when this run started")
        if self.is_main:
            _truncate_metrics(self.out_dir / "metrics.jsonl", self.step)


def _match_parameter_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give every per-parameter optimiser state tensor its parameter's memory layout.

    Checkpoints store tensors contiguous, so channels_last weights get NCHW Adam
    moments back. The fused optimisers walk parameter and state memory in step:
    with mismatched layouts they pair the wrong elements and a resumed run
    silently diverges (seen with fused Adam on CPU, torch 2.14).
    """
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines logged after the checkpoint, so a resumed run does not duplicate them."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut short by a killed process
    path.write_text("".join(line + "\n" for line in keep))
