"""Checkpoints and exported refiners: safetensors files, written atomically, never pickle.

A checkpoint holds everything a run needs to continue bit-for-bit: both
networks, both optimisers, the history buffer, every RNG state, the step and the
resolved config. An exported refiner holds only the refiner's weights plus the
metadata needed to rebuild it, so ``load_refiner`` works without the caller
knowing which plugin built it.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from refinekit.config import check_widths
from refinekit.errors import CheckpointError, DataError

CHECKPOINT_FORMAT = "refinekit.weights.files"
REFINER_FORMAT = "refinekit.refiner"
FORMAT_VERSION = "1"
PICKLE_SUFFIXES = frozenset({".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin"})


def atomic_save(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path) -> None:
    """Write a safetensors file so that ``path`` is either the old file or the complete new one.

    The data goes to a temporary file in the same folder, is fsynced, then
    renamed over ``path`` (atomic on POSIX). A failure leaves ``path`` untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.chmod(tmp, 0o666 & ~_umask())  # safetensors creates 0600; a refiner is shared like any file
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, SafetensorError) as exc:
        # safetensors reports a full disk as SafetensorError("... (os error 28)"), not OSError.
        tmp.unlink(missing_ok=True)
        if getattr(exc, "errno", None) == errno.ENOSPC or f"(os error {errno.ENOSPC})" in str(exc):
            raise CheckpointError(
                f"no space left on the device while writing {path}; the previous file is intact. "
                "Free some space, then rerun with --resume."
            ) from None
        reason = getattr(exc, "strerror", None) or exc
        raise CheckpointError(f"cannot write {path}: {reason}; the previous file is intact") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _umask() -> int:
    """The process umask (read by setting and restoring it: POSIX has no way to only read it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the half-written temporaries of ``path`` that killed processes left behind.

    A temporary is named after its writer's PID; one whose process no longer
    exists can never be completed, so it only wastes disk.
    """
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[1]
        if pid.isdigit() and not _process_exists(int(pid)):
            tmp.unlink(missing_ok=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def refuse_pickle(path: Path, what: str) -> None:
    """Refuse pickle-based weight files: loading them can run arbitrary code."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path}: refinekit does not load {path.suffix} files as a {what}, because unpickling can run "
            "arbitrary code. Convert it with 'refinekit convert "
            f"{path} {path.with_suffix('.safetensors')} --refiner NAME', which reads it with "
            "torch.load(weights_only=True)."
        )


def read_file(path: Path, expected_format: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a refinekit safetensors file, checked for format and version."""
    refuse_pickle(path, "checkpoint" if expected_format == CHECKPOINT_FORMAT else "refiner")
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc}); it may be truncated") from None
    found = metadata.get("format")
    if found != expected_format:
        raise CheckpointError(f"{path}: metadata 'format' is {found!r}, expected {expected_format!r}")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written by an incompatible refinekit (format_version {version!r}, this one reads "
            f"{FORMAT_VERSION!r}); use the refinekit version that wrote it"
        )
    return tensors, metadata


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """A plain safetensors state dict (e.g. local encoder weights)."""
    refuse_pickle(path, "weights file")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def load_encoder_weights(module: nn.Module, path: Path, what: str) -> None:
    """Load a local safetensors state dict into ``module``; keys it lacks (a classifier head) are ignored.

    Every key of ``module`` must be in the file: a file for another network would
    otherwise load nothing and leave random weights without a word.
    """
    result = module.load_state_dict(load_state_file(path), strict=False)
    if result.missing_keys:
        raise CheckpointError(
            f"{path}: holds no weights for {len(result.missing_keys)} of {len(module.state_dict())} tensors of "
            f"{what} (e.g. {', '.join(result.missing_keys[:3])}); is it the state dict of that timm model?"
        )


def flatten_state(prefix: str, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Any:
    """Move every tensor of a nested state dict into ``tensors``; return the JSON-able remainder."""
    if isinstance(state, torch.Tensor):
        tensors[prefix] = state
        return {"__tensor__": prefix}
    if isinstance(state, dict):
        return {str(k): flatten_state(f"{prefix}.{k}", v, tensors) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return [flatten_state(f"{prefix}.{i}", v, tensors) for i, v in enumerate(state)]
    return state


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(skeleton, dict):
        if set(skeleton) == {"__tensor__"}:
            return tensors[skeleton["__tensor__"]]
        return {k: unflatten_state(v, tensors) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [unflatten_state(v, tensors) for v in skeleton]
    return skeleton


def optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """An optimiser's state dict with integer parameter keys restored (JSON turns them into strings)."""
    return optimizer.state_dict()


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    state = dict(state)
    state["state"] = {int(k): v for k, v in state["state"].items()}
    optimizer.load_state_dict(state)


def export_refiner(
    refiner: nn.Module, path: Path, component: str, options: dict[str, Any], channels: int, image_size: tuple[int, int]
) -> None:
    """Write ``refiner.safetensors``: weights plus the metadata ``load_refiner`` needs to rebuild it."""
    from refinekit import __version__

    metadata = {
        "format": REFINER_FORMAT,
        "format_version": FORMAT_VERSION,
        "component": component,
        "options": json.dumps(options, sort_keys=True),
        "channels": str(channels),
        "image_size": json.dumps(list(image_size)),
        "refinekit_version": __version__,
    }
    atomic_save(dict(refiner.state_dict()), metadata, path)


def load_refiner(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> nn.Module:
    """Load an exported refiner as an inference-ready ``nn.Module``: eval mode, parameters without grad.

    Calling it takes float (B, C, H, W) in [-1, 1]; a uint8 batch raises a
    :class:`DataError` pointing at :func:`refinekit.refine.pipeline.refine_batch`, which
    converts uint8 or float images in any range and back.

    ``path`` is a ``refiner.safetensors``, a run folder, or the name of a
    pretrained refiner that a plugin ships (``refinekit pretrained`` lists them).

    The component is rebuilt from the file's metadata through the plugin
    registry, so the caller needs no knowledge of which plugin built it.

    Examples:
        >>> refiner = load_refiner("runs/eyes/refiner.safetensors")  # doctest: +SKIP
        >>> shipped = load_refiner("eyes-simgan")  # doctest: +SKIP
        >>> refined = refiner(batch)  # float (B, C, H, W) in [-1, 1]; no autograd graph  # doctest: +SKIP
    """
    from refinekit.plugins.registry import create_refiner
    from refinekit.weights.pretrained import resolve_refiner

    path = resolve_refiner(path)
    tensors, metadata = read_file(path, REFINER_FORMAT)
    component, options, channels, image_size = refiner_metadata(path, metadata)
    refuse_nonfinite(path, tensors)
    # An option named ``weights`` points at *starting* weights (e.g. a timm encoder's); the
    # file holds the trained ones, so it is not read again and need not exist any more.
    options.pop("weights", None)
    refiner = create_refiner(component, channels=channels, **options)
    try:
        refiner.load_state_dict(tensors)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit refiner '{component}' with {options}: {exc}") from None
    refiner.refinekit_channels = channels  # type: ignore[assignment]
    refiner.refinekit_image_size = image_size  # type: ignore[assignment]
    # Inference-ready: calling it builds no autograd graph (call requires_grad_(True) to fine-tune it),
    # and a uint8 batch gets an error that says what to do instead of torch's dtype mismatch.
    refiner.requires_grad_(False)
    refiner.register_forward_pre_hook(_refuse_non_float_input)
    return refiner.to(device).eval()


MAX_CHANNELS = 4
MAX_SIDE = 4096
"""Most pixels per side of a refiner's working size: larger metadata is damage or an attack, not a refiner."""


def refiner_metadata(path: Path, metadata: dict[str, str]) -> tuple[str, dict[str, Any], int, tuple[int, int]]:
    """(component, options, channels, image size) from a refiner file's metadata, each checked against sane bounds.

    The file is untrusted: a size of 40000x40000 would make every input allocate
    gigabytes, and 0 or negative sizes would make every good image look unreadable.
    """

    def bad(key: str, expected: str) -> CheckpointError:
        return CheckpointError(
            f"{path}: metadata '{key}' is {metadata.get(key)!r}, expected {expected}; the file is damaged or was "
            "not written by refinekit. Export the refiner again (the run's checkpoint holds its weights)."
        )

    component = metadata.get("component")
    if not isinstance(component, str) or not component.strip() or len(component) > 200:
        raise bad("component", "a registered refiner's name")
    try:
        options = json.loads(metadata["options"])
    except (KeyError, ValueError):
        raise bad("options", "a JSON object of the refiner's options") from None
    if not isinstance(options, dict):
        raise bad("options", "a JSON object of the refiner's options")
    try:
        check_widths("refiner", options)  # 'features': 10**9 would allocate without bound
    except ValueError as exc:
        raise bad("options", f"options within bounds ({exc})") from None
    channels = _bounded_int(metadata.get("channels"), 1, MAX_CHANNELS)
    if channels is None:
        raise bad("channels", f"a whole number of image channels in 1..{MAX_CHANNELS}")
    try:
        size = json.loads(metadata["image_size"])
    except (KeyError, ValueError):
        size = None
    sides = [_bounded_int(side, 1, MAX_SIDE) for side in size] if isinstance(size, list) and len(size) == 2 else []
    if len(sides) != 2 or None in sides:
        raise bad("image_size", f"[height, width], whole numbers of pixels in 1..{MAX_SIDE}")
    return component, options, channels, (sides[0], sides[1])  # type: ignore[return-value]


def _bounded_int(value: Any, low: int, high: int) -> int | None:
    """``value`` (an int, or its decimal text) if it is a whole number in ``low..high``, else None."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 12:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def refuse_nonfinite(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse weights holding NaN or infinity: they refine every image to black without a word."""
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"{path}: tensor '{key}' holds NaN or infinite values, so every refined image would be garbage; "
                "the training diverged or the file is damaged. Use an earlier checkpoint or export."
            )


def read_count(path: Path, metadata: dict[str, str], key: str, default: str | None = None) -> int:
    """A non-negative whole number (a step, a count) from a checkpoint's metadata, or a CheckpointError naming it."""
    raw = metadata.get(key, default)
    value = _bounded_int(raw, 0, 10**12)
    if value is None:
        raise CheckpointError(
            f"{path}: metadata '{key}' is {raw!r}, expected a whole number >= 0; the file is damaged or was not "
            "written by refinekit. Resume from another checkpoint, or start a new run in another --out folder."
        )
    return value


def _refuse_non_float_input(refiner: nn.Module, args: tuple[Any, ...]) -> None:
    x = args[0] if args else None
    if isinstance(x, torch.Tensor) and not x.is_floating_point():
        raise DataError(
            f"the refiner takes float images in [-1, 1] of shape (B, C, H, W), but got {x.dtype}; "
            "refinekit.refine.pipeline.refine_batch(refiner, images) takes uint8 (or float in a value_range) and gives "
            "back the same dtype, or convert yourself: images.float() / 127.5 - 1"
        )
