"""Refining inside another pipeline: wrap a torch Dataset, or refine collated batches in a training loop.

Items may be an image, a dict holding one, or a tuple/list holding one; the
item comes back with only the image replaced by its refined version, every
other field (labels, gaze, landmarks) untouched.

Images are ``(C, H, W)`` tensors or arrays (``(H, W)`` is read as one
channel): uint8 in [0, 255], or float in ``value_range``: by default [0, 1],
as torchvision's ``ToTensor`` and kornia give them; pass ``(-1.0, 1.0)`` for
the refiner's own range or ``(0.0, 255.0)`` for unscaled pixel values. Float
images well outside ``value_range`` raise a :class:`DataError` rather than
being clamped.
They keep their shape, dtype and kind (tensor or NumPy array). The refiner
runs at the images' own size; it was trained at ``refiner.refinekit_image_size``,
so feed images of that size for the results it was trained to give.

:class:`RefinedBatches` is the fast path on a GPU: collate first, then refine
the whole batch in one call, instead of one refiner call per item.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from refinekit.errors import DataError
from refinekit.refine.pipeline import DEFAULT_VALUE_RANGE, check_value_range, open_refiner, refine_batch
from refinekit.runtime.precision import Precision, resolve_precision

__all__ = ["RefinedBatches", "RefinedDataset"]

ImageKey = str | int | None


def _as_refiner(refiner: nn.Module | str | os.PathLike[str], device: str | torch.device) -> nn.Module:
    # A module is used where and as it is: it may be the one a training loop is updating.
    return refiner if isinstance(refiner, nn.Module) else open_refiner(refiner, device)


class _Refine:
    """Shared by both wrappers: find the image in an item or batch, refine it, put it back."""

    def __init__(
        self,
        refiner: nn.Module | str | os.PathLike[str],
        image_key: ImageKey,
        device: str | torch.device,
        precision: str,
        value_range: tuple[float, float],
    ) -> None:
        self.refiner = _as_refiner(refiner, device)
        self.image_key = image_key
        param = next(self.refiner.parameters(), None)
        where = param.device if param is not None else torch.device(device)
        self.precision: Precision = resolve_precision(precision, where)
        check_value_range(torch.zeros(0), value_range)  # a malformed range fails here, not at the first item
        self.value_range = value_range
        self._size_warned = False

    def replace(self, item: Any, batched: bool) -> Any:
        image, put = self.locate(item, batched)
        return put(self.refine(image, batched))

    def replace_many(self, items: list[Any]) -> list[Any]:
        """``replace`` for each item, with all images refined in one call when they stack (same shape and kind)."""
        located = [self.locate(item, batched=False) for item in items]
        images = [image for image, _ in located]
        first = images[0] if images else None
        stackable = len(images) > 1 and all(
            isinstance(image, (torch.Tensor, np.ndarray))
            and type(image) is type(first)
            and image.shape == first.shape
            and image.dtype == first.dtype
            for image in images
        )
        if not stackable:
            return [put(self.refine(image, batched=False)) for image, put in located]
        if isinstance(first, np.ndarray):
            refined = self.refine(np.stack(images), batched=True)
        else:
            refined = self.refine(torch.stack(images), batched=True)
        return [put(refined[k]) for k, (_, put) in enumerate(located)]

    def locate(self, item: Any, batched: bool) -> tuple[Any, Callable[[Any], Any]]:
        """The image in ``item``, and a function that gives ``item`` back with another image in its place."""
        if isinstance(item, dict):
            key = "image" if self.image_key is None else self.image_key
            if key not in item:
                raise DataError(f"the item has no key {key!r} (its keys: {sorted(map(str, item))}); pass image_key=...")
            return item[key], lambda image: {**item, key: image}
        if isinstance(item, (tuple, list)):
            index = 0 if self.image_key is None else self.image_key
            if not isinstance(index, int) or not -len(item) <= index < len(item):
                raise DataError(
                    f"image_key={index!r} does not index an item of {len(item)} fields; pass an int position"
                )
            if self.image_key is None and not _looks_like_image(item[0], batched):
                found = next((i for i, field in enumerate(item) if _looks_like_image(field, batched)), None)
                where = f"; the image looks like field {found}: pass image_key={found}" if found is not None else ""
                raise DataError(
                    f"field 0 of the {type(item).__name__} item is {_a(item[0])}, not an image; "
                    f"image_key (default 0) says which field is the image{where}"
                )

            def put(image: Any) -> Any:
                fields = list(item)
                fields[index] = image
                if hasattr(item, "_fields"):  # a namedtuple
                    return type(item)(*fields)
                return type(item)(fields)

            return item[index], put
        if self.image_key is not None:
            raise DataError(
                f"image_key={self.image_key!r} was given, but the item is a {type(item).__name__}, not a dict or tuple"
            )
        return item, lambda image: image

    def refine(self, image: Any, batched: bool) -> Any:
        is_array = isinstance(image, np.ndarray)
        if not is_array and not isinstance(image, torch.Tensor):
            raise DataError(
                f"the image is {_a(image)}; RefinedDataset takes a tensor or NumPy array "
                "(C, H, W), e.g. after torchvision's PILToTensor (uint8) or ToTensor (float in [0, 1])"
            )
        tensor = torch.from_numpy(np.ascontiguousarray(image)) if is_array else image
        shape = tensor.shape
        wanted = 4 if batched else 3
        if tensor.ndim == wanted - 1:  # no channel axis: one channel
            tensor = tensor.unsqueeze(-3)
        if tensor.ndim != wanted:
            layout = "(B, C, H, W)" if batched else "(C, H, W)"
            raise DataError(f"expected images of shape {layout}, got {tuple(shape)}")
        self._refuse_channels_last(tensor, batched, is_array)
        self._warn_if_other_size(tuple(tensor.shape[-2:]))
        batch = tensor if batched else tensor.unsqueeze(0)
        refined = refine_batch(self.refiner, batch, value_range=self.value_range, precision=self.precision)
        refined = refined.reshape(shape)
        return refined.numpy() if is_array else refined

    def _refuse_channels_last(self, tensor: torch.Tensor, batched: bool, is_array: bool) -> None:
        """(H, W, C) images, as NumPy and PIL hold them, would otherwise read as W-channel images."""
        channels, last = tensor.shape[-3], tensor.shape[-1]
        expected = getattr(self.refiner, "refinekit_channels", None)
        if channels == expected or last > 4 or channels <= 4:
            return
        layout, order = ("(B, H, W, C)", "(0, 3, 1, 2)") if batched else ("(H, W, C)", "(2, 0, 1)")
        fix = f"np.transpose(image, {order})" if is_array else f"image.permute{order}"
        raise DataError(
            f"the image of shape {tuple(tensor.shape)} looks like {layout}, channels last (as NumPy and PIL "
            f"hold images); RefinedDataset takes channels first: use {fix}, or torchvision's PILToTensor"
        )

    def _warn_if_other_size(self, size: tuple[int, int]) -> None:
        trained = getattr(self.refiner, "refinekit_image_size", None)
        if trained is not None and tuple(trained) != size and not self._size_warned:
            self._size_warned = True
            warnings.warn(
                f"images are {size[0]}x{size[1]} (HxW) but the refiner was trained at {trained[0]}x{trained[1]}; "
                "it runs at any size, but its texture changes were learnt at the trained scale",
                stacklevel=4,
            )


@contextmanager
def _one_cpu_thread(refiner: nn.Module) -> Iterator[None]:
    """Run a one-image refiner call on one CPU thread.

    For a single small image, torch's default of one thread per core mostly
    adds synchronisation: on a busy 2-core machine one item took about 8 times
    longer on 2 threads than on 1 (issue 16). DataLoader workers already use one
    thread each; this does the same for ``refined[i]`` in the main process.
    """
    param = next(refiner.parameters(), None)
    threads = torch.get_num_threads()
    if (param is not None and param.device.type != "cpu") or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _looks_like_image(value: Any, batched: bool) -> bool:
    return isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim >= (3 if batched else 2)


def _a(value: Any) -> str:
    """``a float``, ``an int``, ``a tensor of shape (3,)``: what a field holds, for messages."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"a {'tensor' if isinstance(value, torch.Tensor) else 'NumPy array'} of shape {tuple(value.shape)}"
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


class RefinedDataset(Dataset):
    """A dataset whose items are ``dataset``'s items with the image refined, other fields unchanged.

    A DataLoader fetches a whole batch of items at once (``__getitems__``), and
    they are refined in one refiner call, which is many times faster than one
    call per item on a CPU. Indexing one item (``refined[i]``) runs the refiner
    on that image alone, on one CPU thread: for a single small image more
    threads only add overhead. On a GPU :class:`RefinedBatches` (or
    :func:`refinekit.refine.pipeline.refine_batch` on collated batches) keeps the refiner
    in the main process. With DataLoader workers the refiner is copied into
    each worker; keep it on the CPU then.

    Args:
        dataset: any map-style dataset.
        refiner: an exported ``refiner.safetensors`` path, or a loaded refiner module.
        image_key: where the image is: a dict key (default ``"image"``), a
            tuple position (default 0), or None for items that are the image.
        device: where a refiner loaded from a path runs (a module runs where it
            is); the images come back where they were.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto``.
        value_range: the range of float images (uint8 is always [0, 255]):
            by default ``(0.0, 1.0)``, torchvision's ``ToTensor`` range;
            ``(-1.0, 1.0)`` is the refiner's own. Images well outside it raise
            a :class:`DataError` instead of being clamped.

    Examples:
        >>> refined = RefinedDataset(eyes, "runs/eyes/refiner.safetensors", image_key="image")  # doctest: +SKIP
        >>> refined[0]["gaze"] is eyes[0]["gaze"]  # doctest: +SKIP
        True
    """

    def __init__(
        self,
        dataset: Dataset,
        refiner: nn.Module | str | os.PathLike[str],
        image_key: ImageKey = None,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        value_range: tuple[float, float] = DEFAULT_VALUE_RANGE,
    ) -> None:
        self.dataset = dataset
        self._refine = _Refine(refiner, image_key, device, precision, value_range)

    @property
    def refiner(self) -> nn.Module:
        return self._refine.refiner

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        with _one_cpu_thread(self._refine.refiner):
            return self._refine.replace(self.dataset[index], batched=False)

    def __getitems__(self, indices: list[int]) -> list[Any]:
        """The items at ``indices``, their images refined in one call: what a DataLoader asks for per batch."""
        items = [self.dataset[i] for i in indices]
        return self._refine.replace_many(items)


class RefinedBatches:
    """Iterate ``batches`` (e.g. a DataLoader) with each batch's images refined in one call.

    Args:
        batches: an iterable of collated batches (tensors, or dicts/tuples holding a (B, C, H, W) tensor).
        refiner: as for :class:`RefinedDataset`.
        image_key: as for :class:`RefinedDataset`.
        device: as for :class:`RefinedDataset`.
        precision: as for :class:`RefinedDataset`.
        value_range: as for :class:`RefinedDataset`.

    Examples:
        >>> loader = DataLoader(eyes, batch_size=256, num_workers=4, pin_memory=True)  # doctest: +SKIP
        >>> refined = RefinedBatches(loader, "refiner.safetensors", image_key="image", device="cuda")  # doctest: +SKIP
        >>> for batch in refined:  # doctest: +SKIP
        ...     loss = gaze_loss(model(batch["image"].cuda()), batch["gaze"].cuda())
    """

    def __init__(
        self,
        batches: Iterable[Any],
        refiner: nn.Module | str | os.PathLike[str],
        image_key: ImageKey = None,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        value_range: tuple[float, float] = DEFAULT_VALUE_RANGE,
    ) -> None:
        self.batches = batches
        self._refine = _Refine(refiner, image_key, device, precision, value_range)

    @property
    def refiner(self) -> nn.Module:
        return self._refine.refiner

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        for batch in self.batches:
            yield self._refine.replace(batch, batched=True)
