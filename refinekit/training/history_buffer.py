"""The image history buffer (paper, section 2.3).

D is trained on half a batch of current refined images and half a batch drawn
from earlier refined images, so the refiner cannot re-introduce artefacts that
D has forgotten. The buffer lives on the training device as uint8, not in the
training dtype: the paper-scale buffer (B = 100 batches of 512 eye images at
35x55) is 99 MB as uint8 against 395 MB in float32 or 197 MB in bf16, which
matters on a GPU that also holds the dataset; the conversion costs one
elementwise pass per half batch; and its rounding (at most 1/255 in [-1, 1]
units) is what bf16 itself rounds away near +-1, and matches the 8-bit real images.
"""

from __future__ import annotations

import torch

from refinekit.data.image_set import to_device, to_float, to_uint8


class HistoryBuffer:
    """A fixed-size store of refined images with random replacement.

    Args:
        capacity: number of images B (paper: B = 100 * batch size... any size works).
        shape: (C, H, W) of the images.
        device: where the images are kept.

    Examples:
        >>> buf = HistoryBuffer(4, (1, 2, 2), torch.device("cpu"))
        >>> g = torch.Generator().manual_seed(0)
        >>> buf.push(torch.zeros(2, 1, 2, 2), g)
        >>> len(buf), buf.sample(3, g).shape
        (2, torch.Size([3, 1, 2, 2]))
    """

    def __init__(self, capacity: int, shape: tuple[int, int, int], device: torch.device) -> None:
        self.capacity = capacity
        self.images = torch.zeros((capacity, *shape), dtype=torch.uint8, device=device)
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def push(self, refined: torch.Tensor, generator: torch.Generator | None) -> None:
        """Store ``refined`` (float in [-1, 1]): fill empty slots first, then overwrite random slots."""
        new = to_uint8(refined).to(self.images.device)
        free = min(self.capacity - self.size, len(new))
        if free > 0:
            self.images[self.size : self.size + free] = new[:free]
            self.size += free
        rest = new[free:]
        if len(rest) > 0:
            slots = to_device(torch.randperm(self.capacity, generator=generator)[: len(rest)], self.images.device)
            self.images[slots] = rest[: len(slots)]

    def sample(self, count: int, generator: torch.Generator | None) -> torch.Tensor:
        """``count`` stored images, drawn uniformly without replacement, as float in [-1, 1]."""
        if self.size == 0:
            raise RuntimeError("history buffer is empty; push refined images before sampling")
        index = torch.randperm(self.size, generator=generator)[:count]
        if len(index) < count:  # fewer stored than asked: draw with replacement
            index = torch.randint(self.size, (count,), generator=generator)
        return to_float(self.images[to_device(index, self.images.device)])

    def state(self) -> dict[str, torch.Tensor]:
        return {"images": self.images[: self.size].cpu(), "size": torch.tensor(self.size)}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        size = int(state["size"])
        if size > self.capacity:
            raise ValueError(f"checkpoint buffer holds {size} images but buffer_size is {self.capacity}")
        self.images[:size] = state["images"].to(self.images.device)
        self.size = size
