"""``refinekit refine``: stream any dataset through an exported refiner into sharded, resumable outputs.

Memory stays flat at any dataset size: an image folder is listed (names only)
and decoded one batch at a time; a dataset loader's arrays are sliced one batch
at a time. Decoding and PNG encoding run in a thread pool (Pillow releases the
GIL) while the main thread runs the refiner, so disk and compute overlap.

Outputs are at the refiner's working size and channel count (the size it was
trained at, ``refiner.refinekit_image_size``), because a refiner's receptive
field is tuned to that scale, and dataset loaders deliver their annotations
(landmarks, gaze) in that same space. An input image of another size or colour
is refused unless ``resize`` (stretch, pad or crop) or ``convert_channels``
says what to do with it (:mod:`refinekit.refine.input_fit`). JSON sidecars of an
image folder are copied byte for byte; when images were resized, pixel
coordinates in the sidecars are not rescaled, and a warning gives the map.

Work is split into shards of ``shard_size`` consecutive inputs. See
:mod:`refinekit.refine.outputs` for the folder layout and why a killed run can
simply be rerun.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch import nn

from refinekit.data.folder_lock import releases_locks
from refinekit.data.image_set import to_float, to_uint8
from refinekit.errors import ConfigError, DataError
from refinekit.refine.display import RefineDisplay
from refinekit.refine.input_fit import coordinate_map
from refinekit.refine.inputs import FolderInput, open_input
from refinekit.refine.output_locks import claim_output
from refinekit.refine.output_records import build_manifest, clear_unfinished, read_record, verify_output
from refinekit.refine.outputs import FORMAT_VERSION, FORMATS, OUTPUT_FORMAT, ShardWriter
from refinekit.runtime.chunks import forward_in_chunks, images_per_chunk
from refinekit.runtime.precision import Precision, resolve_device, resolve_precision
from refinekit.weights.files import load_refiner
from refinekit.weights.pretrained import resolve_refiner

__all__ = [
    "DEFAULT_VALUE_RANGE",
    "check_value_range",
    "open_refiner",
    "parse_shard",
    "refine_batch",
    "refine_to_folder",
    "verify_output",
]


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` -> ``(i, n)``: this process refines every n-th shard, starting at shard i.

    Examples:
        >>> parse_shard("1/4")
        (1, 4)
        >>> parse_shard(None) is None
        True
    """
    if text is None:
        return None
    part, _, count = text.partition("/")
    try:
        i, n = int(part), int(count)
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected I/N with whole numbers, e.g. 0/4 (part 0 of 4)") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text!r}: I must be in 0..N-1 and N at least 1, e.g. 0/4, 1/4, 2/4 and 3/4")
    return i, n


def part_from_env() -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) when launched by ``torchrun`` with more than one process, else None."""
    world = os.environ.get("WORLD_SIZE")
    if not world:
        return None
    try:
        i, n = int(os.environ.get("RANK", "0")), int(world)
    except ValueError:
        raise ConfigError(f"RANK={os.environ.get('RANK')!r} / WORLD_SIZE={world!r} are not whole numbers") from None
    if n <= 1:
        return None
    if not 0 <= i < n:
        raise ConfigError(f"RANK={i} is outside 0..WORLD_SIZE-1 (WORLD_SIZE={n})")
    return i, n


def open_refiner(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> nn.Module:
    """:func:`refinekit.load_refiner`, in the channels-last layout, remembering its file for error messages."""
    refiner = load_refiner(path, device).to(memory_format=torch.channels_last)
    refiner.refinekit_path = str(path)  # type: ignore[assignment]
    return refiner


def channel_mismatch(refiner: nn.Module, expected: int, got: int, what: str) -> DataError:
    """The error for images whose channel count is not the refiner's, naming the refiner's file."""
    path = getattr(refiner, "refinekit_path", None)
    name = f"refiner {path}" if path else f"the {type(refiner).__name__} refiner"
    return DataError(
        f"{name} refines {expected}-channel images, but {what} has {got} channels; "
        f"use a refiner trained on {got}-channel images, or convert the images to {expected} channel(s)"
    )


DEFAULT_VALUE_RANGE = (0.0, 1.0)
"""The range float images are read in unless told otherwise: torchvision's ``ToTensor`` and kornia's convention."""

_RANGE_SLACK = 0.1
"""How far (a share of the range) float images may stray outside ``value_range``, e.g. bicubic overshoot."""


def check_value_range(images: torch.Tensor, value_range: tuple[float, float], what: str = "the images") -> None:
    """Raise a :class:`DataError` when float ``images`` contradict ``value_range``, instead of clamping them.

    A little overshoot (a tenth of the range, as bicubic resizing gives) is
    allowed; anything further means the range is wrong, and the refiner would
    squash the images into the tanh range without a word.

    Examples:
        >>> check_value_range(torch.tensor([0.0, 0.5, 1.0]), (0.0, 1.0))
        >>> check_value_range(torch.tensor([0.0, 255.0]), (0.0, 1.0))
        Traceback (most recent call last):
        ...
        refinekit.errors.DataError: the images hold float values in [0, 255], outside value_range (0.0, 1.0) ...
    """
    low, high = value_range
    if not high > low:
        raise ConfigError(f"value_range {value_range} must be (low, high) with high > low, e.g. (0.0, 1.0)")
    if images.numel() == 0:
        return
    found_low, found_high = (float(v) for v in torch.aminmax(images.detach().float()))
    if not (math.isfinite(found_low) and math.isfinite(found_high)):
        raise DataError(f"{what} hold NaN or infinite values; refine finite images only")
    slack = _RANGE_SLACK * (high - low)
    if found_low >= low - slack and found_high <= high + slack:
        return
    if found_high > 1.0 + _RANGE_SLACK and found_low >= -_RANGE_SLACK and found_high <= 255.0 * (1 + _RANGE_SLACK):
        hint = "they look like unscaled [0, 255] pixel values: pass value_range=(0.0, 255.0), or divide them by 255"
    elif found_low < -_RANGE_SLACK and found_low >= -1.0 - 2 * _RANGE_SLACK and found_high <= 1.0 + 2 * _RANGE_SLACK:
        hint = "they look like the refiner's own [-1, 1] (e.g. after Normalize(0.5, 0.5)): pass value_range=(-1.0, 1.0)"
    else:
        hint = "pass the range they are in as value_range=(low, high), e.g. undo a mean/std Normalize first"
    default = " (the default: torchvision's ToTensor range)" if tuple(value_range) == DEFAULT_VALUE_RANGE else ""
    raise DataError(
        f"{what} hold float values in [{found_low:.4g}, {found_high:.4g}], outside value_range "
        f"{tuple(float(v) for v in value_range)}{default}; {hint}. Refining them as they are would clamp them"
    )


def refine_batch(
    refiner: nn.Module,
    images: torch.Tensor,
    *,
    value_range: tuple[float, float] = DEFAULT_VALUE_RANGE,
    precision: str | Precision = "fp32",
) -> torch.Tensor:
    """Refine a batch, keeping its shape, dtype and device.

    Collate first, then refine: one call per batch keeps a GPU busy, where one
    call per item would not.

    Args:
        refiner: e.g. from :func:`open_refiner`; it runs on its own device.
        images: (B, C, H, W); uint8 in [0, 255], or float in ``value_range``.
        value_range: the range of float images: by default ``(0.0, 1.0)``, as
            torchvision's ``ToTensor`` and kornia give them; ``(-1.0, 1.0)`` for
            the refiner's own range; ``(0.0, 255.0)`` for unscaled pixel values.
            Float images well outside it raise a :class:`DataError` instead of
            being clamped.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto``, or a :class:`Precision`.

    Returns:
        A normal tensor (not an inference tensor), so it can feed a model being trained.

    Examples:
        >>> refiner = open_refiner("runs/eyes/refiner.safetensors")  # doctest: +SKIP
        >>> for images, gaze in loader:  # doctest: +SKIP
        ...     images = refine_batch(refiner, images.cuda())
    """
    if images.ndim != 4:
        raise DataError(f"refine_batch expects images of shape (B, C, H, W), got {tuple(images.shape)}")
    expected = getattr(refiner, "refinekit_channels", None)
    if expected is not None and images.shape[1] != expected:
        if images.shape[3] == expected and images.shape[1] > 4:
            raise DataError(
                f"the batch of shape {tuple(images.shape)} looks like (B, H, W, C), channels last; "
                f"refine_batch takes (B, C, H, W): pass images.permute(0, 3, 1, 2)"
            )
        raise channel_mismatch(refiner, expected, images.shape[1], f"the batch of shape {tuple(images.shape)}")
    is_uint8 = images.dtype == torch.uint8
    if not is_uint8 and not images.is_floating_point():
        raise DataError(f"refine_batch takes uint8 or float images, got {images.dtype}")
    low, high = value_range
    if not is_uint8:
        check_value_range(images, value_range)
    param = next(refiner.parameters(), None)
    device = param.device if param is not None else images.device
    if isinstance(precision, str):
        precision = resolve_precision(precision, device)
    was_training = refiner.training
    refiner.eval()  # e.g. BatchNorm in a timm encoder: use, never update, its statistics
    try:
        with torch.inference_mode():
            x = images.to(device, non_blocking=True)
            x = to_float(x) if is_uint8 else (x.float() - low) * (2.0 / (high - low)) - 1.0
            with precision.autocast():
                chunk = images_per_chunk(x.device, x.shape[2], x.shape[3], len(x))
                y = forward_in_chunks(refiner, x.contiguous(memory_format=torch.channels_last), chunk)
            y = to_uint8(y) if is_uint8 else ((y.float() + 1.0) * ((high - low) / 2.0) + low).to(images.dtype)
            y = y.to(images.device).contiguous()
    finally:
        refiner.train(was_training)
    return y.clone()  # outside inference mode: a normal tensor that autograd may use


@releases_locks  # one writer per OUTPUT (per part with --shard), until this returns
def refine_to_folder(
    refiner: str | os.PathLike[str],
    input_path: str | os.PathLike[str] | None,
    output: str | os.PathLike[str],
    *,
    batch_size: int = 256,
    shard_size: int = 4096,
    shard: tuple[int, int] | None = None,
    fmt: str = "png",
    dataset: str | None = None,
    device: str = "auto",
    precision: str = "fp32",
    skip_bad: bool = False,
    progress: bool = True,
    channels: int | None = None,
    resize: str = "refuse",
    convert_channels: bool = False,
    workers: int | None = None,
    source: Any = None,
    raw: bool = False,
) -> dict[str, Any]:
    """Refine every image of ``input_path`` into ``output``, annotations unchanged; resumable.

    Rerunning the same call after a crash finishes the work without redoing
    completed shards. With ``shard=(i, n)`` (or under ``torchrun``, RANK and
    WORLD_SIZE) this process writes only shards i, i+n, i+2n, ...; the part
    that completes the last shard writes ``manifest.json`` for all of them
    (rerunning any part once all are done also writes it).

    Args:
        refiner: an exported ``refiner.safetensors``, a run folder, or a pretrained refiner's name.
        input_path: a folder of images or any path a registered dataset loader detects.
        output: the output folder (new, empty, or an unfinished refinement of the same inputs).
        batch_size: images per refiner call.
        shard_size: images per output shard: the unit of resuming and of ``--shard``.
        shard: ``(i, n)``: process only part i of n.
        fmt: ``png`` (one file per image, JSON sidecars) or ``safetensors`` (one file per shard).
        dataset: the dataset loader's name, to skip detection.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto`` (autocast dtype).
        skip_bad: skip unreadable images (listed in the manifest) instead of stopping.
        progress: show a progress bar with images/s.
        channels: the channels the input is expected to have; must be the refiner's.
        resize: how an image not at the working size reaches it: ``refuse`` (an
            error), ``stretch``, ``pad`` or ``crop`` (see :mod:`refinekit.refine.input_fit`).
        convert_channels: convert colour images to gray for a gray refiner (or
            gray to colour for a colour one) instead of refusing them.
        workers: threads decoding and writing images (default: the CPU count, at most 4).
        source: an input already opened (a :class:`refinekit.refine.inputs.RefineInput`, e.g. a generated
            dataset from :mod:`refinekit.refine.training_set`), read instead of ``input_path``.
        raw: write the inputs unrefined, at the refiner's working size (the refiner only sets size and channels).

    Returns:
        The manifest without its per-file lists: ``count`` (images written by
        all parts so far), ``complete``, ``shards`` (one summary per done shard), ...
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if batch_size < 1 or shard_size < 1:
        raise ConfigError(f"--batch-size ({batch_size}) and --shard-size ({shard_size}) must be at least 1")
    part, parts = shard or part_from_env() or (0, 1)
    if not 0 <= part < parts:
        raise ConfigError(f"shard=({part}, {parts}): the part must be in 0..{parts - 1}")
    refiner_path = resolve_refiner(refiner)
    torch_device = _device(device)
    chosen_precision = resolve_precision(precision, torch_device)
    model = open_refiner(refiner_path, torch_device)
    refiner_channels: int = model.refinekit_channels  # type: ignore[assignment]
    size: tuple[int, int] = tuple(model.refinekit_image_size)  # type: ignore[assignment]
    if channels is not None and channels != refiner_channels:
        raise ConfigError(
            f"refiner {refiner_path} refines {refiner_channels}-channel images, but {channels}-channel input was "
            f"requested (--channels {channels}); use a refiner trained on {channels}-channel images"
        )
    if source is None:
        source = open_input(
            input_path, dataset, refiner_channels, size, skip_bad, refiner_path, resize, convert_channels
        )
    count = len(source)
    fingerprint = source.fingerprint()
    spans = [(start, min(start + shard_size, count)) for start in range(0, count, shard_size)]
    out = Path(output)
    refiner_sha256 = _sha256_file(refiner_path)
    claim_output(
        out,
        {
            "format": OUTPUT_FORMAT,
            "format_version": FORMAT_VERSION,
            "refiner_sha256": None if raw else refiner_sha256,  # a raw export is no refiner's output
            "dataset": source.dataset,
            "input_count": count,
            "input_fingerprint": fingerprint,
            "shard_size": shard_size,
            "output_format": fmt,
            "image": [refiner_channels, *size],
        },
        part=(part, parts) if shard is not None or parts > 1 else None,
    )
    mine = [k for k in range(len(spans)) if k % parts == part]
    todo = [k for k in mine if read_record(out, k, *spans[k]) is None]
    pending = set(todo)
    done_images = sum(spans[k][1] - spans[k][0] for k in mine if k not in pending)
    for k in todo:
        clear_unfinished(out, k)
    display = RefineDisplay(done_images, done_images + sum(spans[k][1] - spans[k][0] for k in todo), progress)
    with display:
        skipped = _refine_shards(
            None if raw else model, chosen_precision, source, out, fmt, spans, todo, batch_size, workers or min(4, os.cpu_count() or 1),
            display,
        )
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unreadable inputs (first: {skipped[0]['reason']}); listed in the manifest",
            stacklevel=2,
        )
    _warn_if_resized(source, size, resize)
    header = {
        "format": OUTPUT_FORMAT,
        "format_version": FORMAT_VERSION,
        "refiner": {"path": str(refiner_path.resolve()), "sha256": refiner_sha256},
        "input": {
            "path": str(Path(input_path).resolve()) if input_path is not None else None,
            "dataset": source.dataset,
            "description": source.description,
            "count": count,
            "fingerprint": fingerprint,
        },
        "image": {
            "channels": refiner_channels,
            "height": size[0],
            "width": size[1],
            "resize": resize,
            "note": (
                "outputs are at the refiner's working size; inputs of other sizes were "
                + ("refused" if resize == "refuse" else f"resized by --resize {resize}")
                + "; annotations are copied unchanged (pixel coordinates are not rescaled)"
            ),
        },
        "output_format": fmt,
        "refined": not raw,
        "annotations": (
            "per image: shard_NNNNN/INDEX.json beside INDEX.png" if fmt == "png"
            else "per shard: tensors 'annotation.KEY' in shard_NNNNN.safetensors, rows aligned with 'index'"
        ),
        "shard_size": shard_size,
        "shard_count": len(spans),
    }
    return build_manifest(out, header, spans)


def _device(name: str) -> torch.device:
    """Like :func:`resolve_device`, plus ``cuda:N``; under torchrun each rank takes GPU LOCAL_RANK."""
    if name.startswith("cuda:"):
        resolve_device("cuda")
        return torch.device(name)
    device = resolve_device(name)
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def _warn_if_resized(source: Any, size: tuple[int, int], resize: str) -> None:
    """Say how many images were resized and, where sidecars came along, how to map their coordinates."""
    if not isinstance(source, FolderInput) or not getattr(source, "resized_count", 0):
        return
    name, found = source.resized[0]
    message = (
        f"{source.folder}: {source.resized_count} images were not at the refiner's {size[0]}x{size[1]} (HxW) "
        f"and were resized (--resize {resize}), e.g. {name} ({found[0]}x{found[1]})"
    )
    if any(source.has_sidecar):
        message += (
            "; their JSON sidecars are copied unchanged, so map any pixel coordinates in them yourself: for "
            f"{name}, {coordinate_map(found, size, resize).describe()} (the map depends on each image's size: "
            "refinekit.refine.input_fit.coordinate_map)"
        )
    warnings.warn(message, stacklevel=3)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _refine_shards(
    model: nn.Module | None,
    precision: Precision,
    source: Any,
    output: Path,
    fmt: str,
    spans: list[tuple[int, int]],
    todo: list[int],
    batch_size: int,
    workers: int,
    display: RefineDisplay,
) -> list[dict[str, Any]]:
    """Refine shards ``todo``; reads run ahead and writes run behind the refiner in a thread pool."""
    count = len(source)
    tasks = iter(
        (k, s, min(s + batch_size, spans[k][1])) for k in todo for s in range(spans[k][0], spans[k][1], batch_size)
    )
    window = 2 * workers  # batches decoding ahead, and batches encoding behind: bounds memory
    reads: deque[tuple[tuple[int, int, int], Future[Any]]] = deque()
    writes: deque[Future[None]] = deque()
    all_skipped: list[dict[str, Any]] = []
    writer: ShardWriter | None = None
    shard_skipped: list[dict[str, Any]] = []
    pool = ThreadPoolExecutor(workers, thread_name_prefix="refinekit-io")

    def top_up() -> None:
        while len(reads) < window:
            task = next(tasks, None)
            if task is None:
                return
            reads.append((task, pool.submit(source.read, task[1], task[2], fmt == "safetensors")))

    def commit() -> None:
        assert writer is not None
        while writes:
            writes.popleft().result()
        writer.commit(shard_skipped)

    try:
        top_up()
        while reads:
            (k, _, _), future = reads.popleft()
            top_up()
            if writer is None or writer.shard != k:
                if writer is not None:
                    commit()
                    writer = None  # committed: nothing of it may be cleared on a later failure
                writer, shard_skipped = ShardWriter(output, k, fmt, count, *spans[k]), []
            batch = future.result()
            refined = (
                refine_batch(model, torch.from_numpy(batch.images), precision=precision).numpy()
                if len(batch) and model is not None else batch.images
            )
            writes.append(pool.submit(writer.write, batch, refined))
            shard_skipped.extend(batch.skipped)
            all_skipped.extend(batch.skipped)
            display.advance(len(batch) + len(batch.skipped))
            while len(writes) > window:
                writes.popleft().result()
        if writer is not None:
            commit()
            writer = None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if writer is not None:  # failed mid-shard: leave no temporary files behind
            clear_unfinished(output, writer.shard)
    return all_skipped
