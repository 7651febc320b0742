"""The synthetic source: digits 0-9 rendered from the fonts that ship inside matplotlib.

Rendering is split in two so that it stays fast: each (font, digit, weight)
glyph is drawn once with PIL, framed like MNIST (see :mod:`framing`), and then
every output image is one of those templates pushed through a batch of random
kornia augmentations (affine, optionally elastic). Labels are exact by
construction: an image's label is the digit its template was drawn from.

The fonts come from ``matplotlib.get_data_path()`` and never from the system
font folders, so the same seed renders the same images on every machine that
has the same matplotlib.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Sequence

import kornia.augmentation as K
import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from refinekit.data.image_set import ImageSet
from refinekit.errors import DataError
from refinekit_digits.digit_sets import NUM_CLASSES, make_image_set
from refinekit_digits.framing import digit_box

DEFAULT_FONTS: tuple[str, ...] = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBol.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "cmti10.ttf",
)
"""matplotlib's bundled fonts whose digits look like digits.

Left out: the DejaVu *Display* faces (no digit glyphs), the Mono faces (a
dotted zero no hand writes) and the symbol fonts.
"""

DEFAULT_WEIGHTS: tuple[float, ...] = (0.0, 0.03, 0.06)
"""Extra stroke width on each side, as a fraction of the font size (PIL ``stroke_width``)."""

GLYPH_FONT_SIZE = 128
"""Glyphs are drawn this large, then shrunk into the digit box, so the shrink anti-aliases them."""

SUPERSAMPLE = 2
"""Augmentations run at this multiple of the output size and are then area-averaged down,
so rotated and sheared edges stay smooth."""


def font_path(name: str) -> Path:
    """Where font ``name`` lives: a file name in matplotlib's bundled ``fonts/ttf`` folder, or a path.

    Raises:
        DataError: the font is neither a bundled file nor an existing path.
    """
    bundled = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
    if bundled.is_file():
        return bundled
    if Path(name).is_file():
        return Path(name)
    raise DataError(
        f"digits-fonts: font {name!r} is not in matplotlib's bundled fonts ({bundled.parent}) "
        "and is not a file; name a bundled .ttf (see refinekit_digits.fonts.DEFAULT_FONTS) or give a path"
    )


def render_glyph(font: ImageFont.FreeTypeFont, digit: int, weight: float, canvas: tuple[int, int]) -> np.ndarray:
    """One digit drawn with ``font``, fitted into the digit box and centred on a ``canvas`` (H, W) float image.

    White ink on black, as in MNIST and the sklearn digits.
    """
    stroke = round(weight * GLYPH_FONT_SIZE)
    left, top, right, bottom = font.getbbox(str(digit), stroke_width=stroke)
    image = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(image).text((-left, -top), str(digit), font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    bbox = image.getbbox()  # the ink itself, tighter than the font's advance box
    if bbox is None:
        raise DataError(f"digits-fonts: font {Path(font.path).name} draws nothing for '{digit}'; choose another font")
    glyph = image.crop(bbox)
    box_h, box_w = digit_box(canvas)
    scale = min(box_h / glyph.height, box_w / glyph.width)
    width, height = max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))
    glyph = glyph.resize((width, height), Image.Resampling.LANCZOS)
    out = np.zeros(canvas, dtype=np.float32)
    top, left = (canvas[0] - height) // 2, (canvas[1] - width) // 2
    out[top : top + height, left : left + width] = np.asarray(glyph, dtype=np.float32) / 255.0
    return out


@functools.lru_cache(maxsize=4)
def render_templates(fonts: tuple[str, ...], weights: tuple[float, ...], canvas: tuple[int, int]) -> torch.Tensor:
    """Every glyph once: float templates in [0, 1], indexed [font, digit, weight] -> (1, H, W).

    Cached, because drawing glyphs costs more than augmenting thousands of
    copies of them; callers index (copy) the templates and never change them.
    """
    templates = []
    for name in fonts:
        font = ImageFont.truetype(str(font_path(name)), GLYPH_FONT_SIZE)
        templates.append(
            [[render_glyph(font, digit, weight, canvas) for weight in weights] for digit in range(NUM_CLASSES)]
        )
    return torch.from_numpy(np.array(templates, dtype=np.float32))[:, :, :, None]


def render_digits(
    count: int,
    size: tuple[int, int] = (28, 28),
    seed: int = 0,
    *,
    fonts: Sequence[str] = DEFAULT_FONTS,
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    rotation: float = 12.0,
    shear: float = 12.0,
    scale: tuple[float, float] = (0.85, 1.05),
    translate: float = 0.06,
    elastic: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` augmented digit images, uint8 (count, 1, H, W), and their exact labels (count,) int64.

    Classes are balanced (``count // 10`` or one more per digit); font and
    weight are drawn uniformly per image.

    Args:
        count: how many images to render.
        size: output (height, width).
        seed: the same seed gives the same images and labels; the global torch
            RNG is left as it was.
        fonts: bundled font file names (or paths).
        weights: stroke thickenings to choose from, as fractions of the font size.
        rotation: maximum rotation in degrees, either way.
        shear: maximum shear in degrees, either way, on both axes.
        scale: range of the isotropic scale factor.
        translate: maximum shift as a fraction of the image size.
        elastic: strength of the elastic distortion (Simard et al. 2003) in
            pixels of the output image, roughly the typical displacement; 0 turns it off.

    Examples:
        >>> images, labels = render_digits(20, seed=1)
        >>> images.shape, images.dtype, sorted(set(labels.tolist())) == list(range(10))
        ((20, 1, 28, 28), dtype('uint8'), True)
    """
    if count < 0:
        raise DataError(f"digits-fonts: count must be >= 0, got {count}")
    canvas = (size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE)
    templates = render_templates(tuple(fonts), tuple(weights), canvas)
    with torch.random.fork_rng(devices=[]):  # kornia draws from the global RNG
        torch.manual_seed(seed)
        labels = (torch.arange(count) % NUM_CLASSES)[torch.randperm(count)]
        font_index = torch.randint(len(fonts), (count,))
        weight_index = torch.randint(len(weights), (count,))
        chosen = templates[font_index, labels, weight_index]
        batch = _augment(chosen, rotation, shear, scale, translate, elastic * SUPERSAMPLE)
    images = F.avg_pool2d(batch, SUPERSAMPLE).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return images.numpy(), labels.numpy().astype(np.int64)


def _augment(
    batch: torch.Tensor,
    rotation: float,
    shear: float,
    scale: tuple[float, float],
    translate: float,
    elastic: float,
    chunk: int = 4096,
) -> torch.Tensor:
    """Random affine, then optional elastic distortion, in chunks to bound memory."""
    steps: list[torch.nn.Module] = [
        K.RandomAffine(
            degrees=rotation,
            translate=(translate, translate),
            scale=tuple(scale),
            shear=(-shear, shear, -shear, shear),
            p=1.0,
        )
    ]
    if elastic > 0:
        steps.append(_elastic(batch.shape[-2:], elastic))
    augment = torch.nn.Sequential(*steps)
    with torch.no_grad():
        return torch.cat([augment(part) for part in batch.split(chunk)]) if len(batch) else batch


def _elastic(canvas: torch.Size, displacement: float) -> K.RandomElasticTransform:
    """kornia's elastic transform with its smoothing tied to the canvas and its strength given in pixels.

    kornia blurs uniform [-1, 1] noise with a Gaussian of ``sigma`` and scales
    it by ``alpha`` in normalised [-1, 1] coordinates. Blurring white noise with
    a 2-D Gaussian divides its standard deviation by about ``2 * sqrt(pi) * sigma``,
    which lets ``alpha`` be solved for a typical displacement in pixels.
    """
    sigma = max(canvas) / 8
    kernel = 2 * int(2 * sigma) + 1
    noise_std = (1 / 3) ** 0.5 / (2 * np.pi**0.5 * sigma)
    alpha = displacement / (max(canvas) / 2) / noise_std
    return K.RandomElasticTransform(
        kernel_size=(kernel, kernel), sigma=(sigma, sigma), alpha=(alpha, alpha), p=1.0
    )


def load_digits_fonts(
    path: str | None,
    *,
    channels: int = 1,
    size: tuple[int, int] = (28, 28),
    limit: int | None = None,
    seed: int = 0,
    count: int = 10000,
    **options: Any,
) -> ImageSet:
    """The ``digits-fonts`` dataset: ``count`` rendered digits with exact ``label`` annotations.

    Args:
        path: must be None; the images are generated, not read.
        channels: 1, or 3 to repeat the gray image into RGB.
        size: (height, width) of every image.
        limit: render at most this many images.
        seed: seeds the choice of glyphs and every augmentation.
        count: how many images to render (10,000 take about two seconds).
        **options: passed to :func:`render_digits` (fonts, weights, rotation,
            shear, scale, translate, elastic).

    Raises:
        DataError: a path was given, an option is unknown, a font is missing or ``count`` is negative.
    """
    if path is not None:
        raise DataError(
            f"digits-fonts renders its images and reads no path, but got {path!r}; "
            "drop 'synthetic.path', or pass the folder with a loader that reads files (e.g. digit-class-folders)"
        )
    known = {"fonts", "weights", "rotation", "shear", "scale", "translate", "elastic"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise DataError(f"digits-fonts: unknown option(s) {unknown}; known options: count, {', '.join(sorted(known))}")
    count = count if limit is None else min(count, limit)
    images, labels = render_digits(count, tuple(size), seed, **options)
    fonts = options.get("fonts", DEFAULT_FONTS)
    source = f"digits-fonts: {count} digits rendered from {len(fonts)} matplotlib fonts (seed {seed})"
    return make_image_set(images, labels, channels=channels, limit=None, seed=seed, source=source)
