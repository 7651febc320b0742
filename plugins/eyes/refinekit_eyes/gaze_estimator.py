"""The paper's gaze-estimation network (Shrivastava et al. 2017, section 3.1 and appendix).

Conv3x3-32, Conv3x3-32, Conv3x3-64, MaxPool3x3/2, Conv3x3-80, Conv3x3-192,
MaxPool2x2/2, FC9600 (the flattened features), FC1000, FC3, trained with a
Euclidean loss on the 3-d gaze vector. The convolutions are unpadded ("valid"),
which is what makes the paper's number come out: a 35x55 input gives 192 x 5 x 10
= 9600 features. The flattened size is computed from ``image_size``, so other
sizes work too. ReLU follows every convolution and the hidden FC layer (the paper
does not list activations; ReLU is the usual reading).

The output is a unit gaze vector in the MPIIGaze convention of
:mod:`refinekit_eyes.gaze`, so the Euclidean loss of the paper is
``((pred - target) ** 2).sum(1).mean()`` on unit vectors (a monotone function of the
angular error) and :func:`refinekit_eyes.gaze.angular_error_degrees` scores it.

Examples:
    >>> import torch
    >>> net = GazeEstimator()
    >>> net.flat_features
    9600
    >>> net(torch.zeros(2, 1, 35, 55)).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

import torch
from torch import nn


class GazeEstimator(nn.Module):
    """Eye image (B, C, H, W) in [-1, 1] -> unit gaze vector (B, 3).

    Args:
        channels: input channels (1 for the paper's grayscale eyes).
        image_size: (H, W) of the input; sets the first FC layer's width.
        hidden: width of the hidden FC layer (paper: 1000).
    """

    def __init__(self, channels: int = 1, image_size: tuple[int, int] = (35, 55), hidden: int = 1000) -> None:
        super().__init__()
        self.image_size = tuple(image_size)
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(64, 80, 3), nn.ReLU(inplace=True),
            nn.Conv2d(80, 192, 3), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
        )  # fmt: skip
        height, width = _feature_size(self.image_size)
        if height < 1 or width < 1:
            raise ValueError(f"GazeEstimator: image_size {image_size} is too small; it needs at least 19x19 pixels")
        self.flat_features = 192 * height * width
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(self.flat_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 3)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or tuple(images.shape[2:]) != self.image_size:
            raise ValueError(
                f"GazeEstimator expects (B, C, {self.image_size[0]}, {self.image_size[1]}) images, "
                f"got {tuple(images.shape)}"
            )
        return nn.functional.normalize(self.head(self.features(images)), dim=1)


def _feature_size(size: tuple[int, int]) -> tuple[int, int]:
    """Spatial size after the feature stack: three valid 3x3 convs, pool 3/2, two convs, pool 2/2."""

    def side(n: int) -> int:
        n = n - 6  # three valid 3x3 convolutions
        n = (n - 3) // 2 + 1  # max-pool 3x3, stride 2
        n = n - 4  # two valid 3x3 convolutions
        return n // 2  # max-pool 2x2, stride 2

    return side(size[0]), side(size[1])
