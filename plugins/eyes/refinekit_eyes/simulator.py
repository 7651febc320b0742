"""A small UnityEyes-like eye renderer: clean synthetic eye patches with exact gaze labels.

It is the embedded synthetic domain of ``eyes-simgan`` (dataset ``eyes-sim``),
so the recipe runs with no download. Each image is drawn, vectorised over the
batch in torch, from a handful of random parameters:

* skin: a base tone, a linear lighting gradient, shadows in the eye corners, an
  upper-lid crease, a brighter brow bone and cheek, sometimes an eyebrow at the top;
* eyelids: the interior margin as two arcs between the eye corners (upper lid
  higher and skewed, lower lid flatter), with a dark lash line along the upper lid;
* the eyeball inside the lids: a bright sclera shaded towards the corners and under
  the upper lid, an iris disc with radial streaks and a dark limbus ring, a pupil
  and a corneal glint.
* the skin's relief around the lids: a bright band under the lower lid with a
  fold line below it, a bright upper lid between lashes and crease, a bright brow
  bone, and blotches and horizontal lines larger than the pores;
* a shadow over the image's left side, strongest above the eye: the real patches are
  about 40 grey levels darker at the top left than at the top right, a place-bound
  difference that a convolutional refiner, which sees every position alike, cannot add;
* the skin's texture (pores and wrinkles at two scales, hair in the brow) and the
  camera: lens blur, sensor noise, and a gain that saturates bright skin to flat
  white, as in many real MPIIGaze patches. None of these moves a landmark, so the
  labels stay exact; a refiner can only learn a gap that is learnable, and these
  are the parts of the gap that a flat-shaded drawing leaves too wide.

The iris follows the gaze as a disc on a sphere seen from the camera: its centre
sits at ``eyeball_centre + D * (g_x, g_y)`` (orthographic projection of a point at
depth ``D`` in front of the eyeball centre, D about 1.7 iris radii as in a human
eye) and it is foreshortened by ``-g_z`` (the cosine of the angle to the camera)
along the direction it moves. Gaze uses the MPIIGaze convention of
:mod:`refinekit_eyes.gaze`: ``g = (-cos p sin y, -sin p, -cos p cos y)``, positive
pitch up, positive yaw towards the image left.

Geometry is laid out in a 60x36 reference frame matching the MPIIGaze
normalised patches (eye corners 42-52 px apart, iris radius 7.5-10 px, eye centre
a little above the middle; tuned by comparing sample grids and mean images with
the embedded real sample) and stretched to the requested size, as the real 36x60
patches are resized to 35x55. The upper eyelid follows vertical gaze, as real lids
do. Edges are sigmoids about a third of a pixel wide before the camera blurs them. Random
texture comes from an integer hash of a per-image seed, not a generator stream, so
an image does not depend on how the batch was chunked. By default each
image is histogram-equalised, because the real MPIIGaze patches are; the labels do
not depend on it.

Examples:
    >>> import torch
    >>> images, labels = simulate_eyes(4, torch.Generator().manual_seed(0))
    >>> images.shape, images.dtype, labels["landmarks"].shape
    (torch.Size([4, 35, 55]), torch.uint8, torch.Size([4, 48, 2]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch

from refinekit.data.image_set import resize_uint8
from refinekit_eyes.gaze import pitch_yaw_to_vector

REFERENCE_WIDTH = 60.0
REFERENCE_HEIGHT = 36.0
EDGE = 0.35  # sigmoid edge width in reference pixels: anti-aliased, still crisp at 55x35
CAMERA_SIZE = (36, 60)  # MPIIGaze's normalised patch (H, W), which the real eyes are resized from
PIXEL_LABELS = ("iris_centre", "landmarks")  # labels in pixels, which follow a resize
MARGIN_POINTS = 16  # as UnityEyes' interior_margin_2d
IRIS_POINTS = 32  # as UnityEyes' iris_2d
BATCH_MULTIPLE = 8
"""Scenes are rendered in batches of a multiple of 8, so no tensor's length leaves a remainder for torch's
scalar loop, whose sigmoid and atan2 differ from the vectorised ones in the last bit: an image is then
the same whatever batch it was drawn in."""


@dataclass(frozen=True)
class SimulatorRanges:
    """Uniform sampling ranges (low, high) of the randomised parameters.

    Lengths are in pixels of the 60x36 reference frame; angles in degrees.

    Args:
        pitch: gaze pitch (up is positive); MPIIGaze spans about +-25.
        yaw: gaze yaw (towards image left is positive); MPIIGaze spans about +-30.
        eye_width: distance between the eye corners.
        openness: scales the upper eyelid's height (1 = wide open).
        iris_radius: radius of the iris disc.
        iris_brightness: iris grey level in [0, 1] (dark brown to light).
        skin_tone: skin grey level in [0, 1].
        lighting: strength of the directional lighting gradient.
        roll: in-plane head rotation.
        shift: offset of the eye centre in x and y (head position).
        sclera: sclera brightness relative to the skin (below 1: skin brighter, as in
            over-exposed real patches).
        texture: strength of the skin texture (pores, wrinkles) and eyebrow hair.
        exposure: camera gain; above 1 the brightest skin saturates to flat white.
        blur: Gaussian blur sigma in reference pixels (the real patches are upscaled, soft).
        noise: standard deviation of per-pixel sensor noise, in [0, 1] grey levels.
        under_eye: brightening of the skin below the lower lid, its edge following the lid's curve.
        lower_fold: darkness of the fold line that follows the lower lid a few pixels below it.
        lid_highlight: brightening of the upper lid's skin between the lash line and the crease.
        brow_bone: brightening of the skin above the crease, up to the brow.
        wrinkles: strength of the skin's larger-scale texture (blotches and horizontal lines).
        side_shadow: darkening of the skin's left third, full above the eye and a third of it below.
        eye_y: height of the eye centre in the reference frame, before ``shift`` moves it.
        eyeball_offset: how far the eyeball's centre sits below the lids' centre (negative: above), which sets
            where the iris rests between the lids.
        lid_follow: how closely the lids follow vertical gaze: the upper lid's height grows by this times the
            sine of the pitch (shrinks looking down), the lower lid's shrinks by 0.3 of that.

    :data:`PREVIOUS_VERSION` holds the ranges that draw the simulator as it was
    before the lids' relief, and :data:`RELIEF_VERSION` as it was before the side
    shadow, bit for bit: newer parameters are drawn after every earlier one and add
    exactly zero when their range is ``(0, 0)``.
    """

    pitch: tuple[float, float] = (-25.0, 25.0)
    yaw: tuple[float, float] = (-30.0, 30.0)
    eye_width: tuple[float, float] = (42.0, 52.0)
    openness: tuple[float, float] = (0.7, 1.0)
    iris_radius: tuple[float, float] = (7.5, 10.0)
    iris_brightness: tuple[float, float] = (0.03, 0.25)
    skin_tone: tuple[float, float] = (0.45, 0.72)
    lighting: tuple[float, float] = (0.0, 0.15)
    roll: tuple[float, float] = (-8.0, 8.0)
    shift: tuple[float, float] = (-2.5, 2.5)
    sclera: tuple[float, float] = (0.9, 1.25)
    texture: tuple[float, float] = (0.0, 1.0)
    exposure: tuple[float, float] = (1.1, 1.7)
    blur: tuple[float, float] = (0.3, 1.1)
    noise: tuple[float, float] = (0.0, 0.008)
    under_eye: tuple[float, float] = (0.0, 0.25)
    lower_fold: tuple[float, float] = (0.0, 0.15)
    lid_highlight: tuple[float, float] = (0.0, 0.15)
    brow_bone: tuple[float, float] = (0.0, 0.25)
    wrinkles: tuple[float, float] = (0.0, 1.0)
    side_shadow: tuple[float, float] = (0.0, 0.3)
    eye_y: tuple[float, float] = (17.0, 17.0)
    eyeball_offset: tuple[float, float] = (-1.0, 1.0)
    lid_follow: tuple[float, float] = (0.5, 1.0)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


PREVIOUS_VERSION: dict[str, tuple[float, float]] = {
    "under_eye": (0.0, 0.0),
    "lower_fold": (0.0, 0.0),
    "lid_highlight": (0.0, 0.0),
    "brow_bone": (0.0, 0.0),
    "wrinkles": (0.0, 0.0),
    "side_shadow": (0.0, 0.0),
}
"""Ranges that draw the previous simulator (before the lids' relief), for comparisons and old refiners."""

RELIEF_VERSION: dict[str, tuple[float, float]] = {"side_shadow": (0.0, 0.0)}
"""Ranges that draw the simulator with the lids' relief, before the side shadow."""


def range_overrides(ranges: dict[str, tuple[float, float]]) -> list[str]:
    """``--set`` strings that give a run's synthetic ``eyes-sim`` data these ranges, e.g. :data:`PREVIOUS_VERSION`."""
    return [f"synthetic.options.{name}=[{low},{high}]" for name, (low, high) in ranges.items()]


@dataclass(frozen=True)
class EyeParams:
    """Per-image scene parameters, each a (N,) tensor; reference-frame pixels, radians."""

    pitch: torch.Tensor
    yaw: torch.Tensor
    centre_x: torch.Tensor
    centre_y: torch.Tensor
    half_width: torch.Tensor
    roll: torch.Tensor
    upper_height: torch.Tensor
    lower_height: torch.Tensor
    upper_skew: torch.Tensor
    lower_skew: torch.Tensor
    eyeball_offset: torch.Tensor
    iris_radius: torch.Tensor
    iris_depth: torch.Tensor
    pupil_ratio: torch.Tensor
    iris_brightness: torch.Tensor
    streak_strength: torch.Tensor
    streak_count: torch.Tensor
    streak_phase: torch.Tensor
    limbus_darkness: torch.Tensor
    sclera_brightness: torch.Tensor
    skin_tone: torch.Tensor
    light_angle: torch.Tensor
    light_strength: torch.Tensor
    corner_shadow: torch.Tensor
    crease_gap: torch.Tensor
    crease_darkness: torch.Tensor
    lash_darkness: torch.Tensor
    cheek_brightness: torch.Tensor
    brow_y: torch.Tensor
    brow_darkness: torch.Tensor
    glint_strength: torch.Tensor
    glint_x: torch.Tensor
    glint_y: torch.Tensor
    texture: torch.Tensor
    exposure: torch.Tensor
    blur: torch.Tensor
    noise: torch.Tensor
    texture_seed: torch.Tensor
    under_eye: torch.Tensor
    lower_fold: torch.Tensor
    lid_highlight: torch.Tensor
    brow_bone: torch.Tensor
    wrinkles: torch.Tensor
    side_shadow: torch.Tensor

    def __len__(self) -> int:
        return len(self.pitch)

    def slice(self, start: int, stop: int) -> EyeParams:
        return EyeParams(**{f.name: getattr(self, f.name)[start:stop] for f in fields(self)})

    def padded(self, multiple: int) -> EyeParams:
        """These scenes, the last one repeated until their number is a multiple of ``multiple``."""
        extra = -len(self) % multiple

        def pad(values: torch.Tensor) -> torch.Tensor:
            return torch.cat((values, values[-1:].expand(extra)))

        return EyeParams(**{f.name: pad(getattr(self, f.name)) for f in fields(self)})


def sample_params(generator: torch.Generator, count: int, ranges: SimulatorRanges = SimulatorRanges()) -> EyeParams:
    """Draw ``count`` scenes. Parameters are drawn in a fixed order, so a seed fixes every image."""

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(count, generator=generator)

    def ranged(name: str) -> torch.Tensor:
        return uniform(*getattr(ranges, name))

    openness = ranged("openness")
    pitch = torch.deg2rad(ranged("pitch"))
    # Eyelids follow vertical gaze (the upper lid drops when looking down), as in real eyes
    # and UnityEyes; without it a downward gaze hides the iris behind a wide-open lid.
    lid_follow = torch.sin(pitch) * ranged("lid_follow")
    params = EyeParams(
        pitch=pitch,
        yaw=torch.deg2rad(ranged("yaw")),
        centre_x=REFERENCE_WIDTH / 2 + ranged("shift"),
        centre_y=ranged("shift"),  # the eye's height is added last, below
        half_width=ranged("eye_width") / 2,
        roll=torch.deg2rad(ranged("roll")),
        upper_height=openness * uniform(7.0, 9.5) * (1 + lid_follow),
        lower_height=uniform(4.0, 6.5) * (1 - 0.3 * lid_follow),
        upper_skew=uniform(-0.25, 0.2),
        lower_skew=uniform(-0.2, 0.2),
        eyeball_offset=ranged("eyeball_offset"),
        iris_radius=ranged("iris_radius"),
        iris_depth=uniform(1.55, 1.85),
        pupil_ratio=uniform(0.3, 0.5),
        iris_brightness=ranged("iris_brightness"),
        streak_strength=uniform(0.0, 0.5),
        streak_count=torch.randint(9, 20, (count,), generator=generator).float(),
        streak_phase=uniform(0.0, 2 * math.pi),
        limbus_darkness=uniform(0.3, 0.8),
        sclera_brightness=ranged("sclera"),  # relative to the skin tone
        skin_tone=ranged("skin_tone"),
        light_angle=uniform(0.0, 2 * math.pi),
        light_strength=ranged("lighting"),
        corner_shadow=uniform(0.1, 0.35),
        crease_gap=uniform(2.5, 5.5),
        crease_darkness=uniform(0.05, 0.25),
        lash_darkness=uniform(0.25, 0.55),
        cheek_brightness=uniform(0.03, 0.15),
        brow_y=uniform(-8.0, 2.0),
        brow_darkness=uniform(0.0, 0.25),
        glint_strength=uniform(0.3, 1.0),
        glint_x=uniform(-0.45, 0.45),
        glint_y=uniform(-0.45, 0.45),
        # drawn last, so that the scenes above stay those of earlier versions for a seed
        texture=ranged("texture"),
        exposure=ranged("exposure"),
        blur=ranged("blur"),
        noise=ranged("noise"),
        texture_seed=torch.randint(0, 2**31 - 1, (count,), generator=generator),
        under_eye=ranged("under_eye"),
        lower_fold=ranged("lower_fold"),
        lid_highlight=ranged("lid_highlight"),
        brow_bone=ranged("brow_bone"),
        wrinkles=ranged("wrinkles"),
        side_shadow=ranged("side_shadow"),
    )
    return replace(params, centre_y=params.centre_y + ranged("eye_y"))


def render(params: EyeParams, size: tuple[int, int] = (35, 55)) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Draw the scenes: float images (N, H, W) in [0, 1] and their labels.

    Labels (float32): ``gaze`` (N, 3), ``pitch_yaw`` (N, 2) radians, ``iris_centre`` (N, 2)
    and ``landmarks`` (N, 48, 2) (16 eyelid-margin points from the left corner along the
    upper lid to the right corner and back along the lower lid, then 32 iris-contour
    points), all in output pixels with the centre of the top-left pixel at (0, 0).
    """
    height, width = size
    p = {f.name: getattr(params, f.name)[:, None, None] for f in fields(params)}
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) * (REFERENCE_WIDTH / width)
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) * (REFERENCE_HEIGHT / height)
    x, y = xs[None, None, :], ys[None, :, None]

    # Eye-aligned coordinates: u along the corner line, v down across it.
    cos_r, sin_r = torch.cos(p["roll"]), torch.sin(p["roll"])
    dx, dy = x - p["centre_x"], y - p["centre_y"]
    u = cos_r * dx + sin_r * dy
    v = -sin_r * dx + cos_r * dy
    t = u / p["half_width"]
    upper, lower = _lid_curves(t, p)
    inside_corners = torch.sigmoid((1.0 - t.abs()) * p["half_width"] / EDGE)
    eye = torch.sigmoid((v - upper) / EDGE) * torch.sigmoid((lower - v) / EDGE) * inside_corners

    gaze = pitch_yaw_to_vector(torch.stack((params.pitch, params.yaw), dim=1))
    iris_x, iris_y, along_x, along_y, foreshortening = _iris_geometry(params, gaze)
    ix, iy = iris_x[:, None, None], iris_y[:, None, None]
    ax, ay = along_x[:, None, None], along_y[:, None, None]
    qx, qy = x - ix, y - iy
    along = (qx * ax + qy * ay) / foreshortening[:, None, None]
    across = -qx * ay + qy * ax
    rho = torch.sqrt(along**2 + across**2 + 1e-6) / p["iris_radius"]  # 1 on the iris edge

    eyeball = _eyeball(p, t, v - upper, rho, torch.atan2(across, along), x - ix, y - iy)
    skin = _skin(p, x, y, t, v, upper, lower, size)
    image = _camera((skin * (1 - eye) + eyeball * eye), p, size)

    iris_contour = _iris_points(params, iris_x, iris_y, along_x, along_y, foreshortening)
    labels = {
        "gaze": gaze.float(),
        "pitch_yaw": torch.stack((params.pitch, params.yaw), dim=1).float(),
        "iris_centre": _to_pixels(torch.stack((iris_x, iris_y), dim=1), size),
        "landmarks": _to_pixels(torch.cat((_margin_points(params), iris_contour), dim=1), size),
    }
    return image, labels


def simulate_eyes(
    count: int,
    generator: torch.Generator,
    size: tuple[int, int] = (35, 55),
    ranges: SimulatorRanges = SimulatorRanges(),
    equalize: bool = True,
    chunk: int = 256,
    camera_size: tuple[int, int] | None = CAMERA_SIZE,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Render ``count`` uint8 eye images (N, H, W) with labels, in chunks.

    With ``camera_size`` the images go through the real patches' pipeline: drawn and
    equalised at the camera's patch size, then resized to ``size`` by the core's
    resize, as the 36x60 MPIIGaze patches are. Equalising at ``size`` instead gives
    a perfectly flat histogram that the area resize of the real patches never has
    (the two-sample classifier tells the histograms alone apart). ``None`` draws at
    ``size`` directly. Labels are always in ``size`` pixels.

    Chunks of a few hundred images keep each intermediate tensor (about 2 MB) in the
    CPU cache; the renderer is memory-bound, so this is faster than one big batch.
    """
    params = sample_params(generator, count, ranges)
    size = (int(size[0]), int(size[1]))
    drawn = size if camera_size is None else (int(camera_size[0]), int(camera_size[1]))
    images, labels = [], []
    for start in range(0, count, chunk):
        scenes = params.slice(start, start + chunk)
        image, label = render(scenes.padded(BATCH_MULTIPLE), drawn)
        image, label = image[: len(scenes)], {key: value[: len(scenes)] for key, value in label.items()}
        image = equalize_histograms(image) if equalize else (image * 255).round_().to(torch.uint8)
        images.append(torch.from_numpy(resize_uint8(image[:, None].numpy(), size)[:, 0]))
        if drawn != size:
            label = {
                key: _rescale_points(value, drawn, size) if key in PIXEL_LABELS else value
                for key, value in label.items()
            }
        labels.append(label)
    if not images:
        return torch.empty((0, *size), dtype=torch.uint8), {}
    return torch.cat(images), {key: torch.cat([label[key] for label in labels]) for key in labels[0]}


def equalize_histograms(images: torch.Tensor, levels: int = 4096) -> torch.Tensor:
    """Per-image histogram equalisation of float (N, H, W) images in [0, 1] -> uint8.

    It is OpenCV's ``equalizeHist`` computed on ``levels`` grey levels instead of
    256: equalising already-quantised smooth gradients stretches single 8-bit steps
    into visible bands.
    """
    flat = (images.reshape(len(images), -1).clamp(0, 1) * (levels - 1)).round().long()
    counts = torch.zeros(len(images), levels).scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float32))
    cdf = counts.cumsum(1)
    first = torch.where(counts > 0, cdf, torch.full_like(cdf, float("inf"))).amin(1, keepdim=True)
    scale = (flat.shape[1] - first).clamp(min=1)
    table = ((cdf - first) / scale * 255).round().clamp(0, 255)
    return table.gather(1, flat).to(torch.uint8).reshape(images.shape)


def _lid_curves(t: torch.Tensor, p: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Upper and lower interior-margin offsets v(t) between the corners (t = -1, 1)."""
    bulge = (1 - t * t).clamp(min=0)
    # b(2 - b) has a flat top and meets the corners at an angle, like a real upper lid, without pow().
    upper = -p["upper_height"] * bulge * (2 - bulge) * (1 + p["upper_skew"] * t)
    lower = p["lower_height"] * bulge * (1 + p["lower_skew"] * t)
    return upper, lower


def _iris_geometry(params: EyeParams, gaze: torch.Tensor):
    """Iris centre (reference pixels), the unit image direction it moves along, and its foreshortening."""
    cos_r, sin_r = torch.cos(params.roll), torch.sin(params.roll)
    eyeball_x = params.centre_x - sin_r * params.eyeball_offset
    eyeball_y = params.centre_y + cos_r * params.eyeball_offset
    depth = params.iris_depth * params.iris_radius
    iris_x = eyeball_x + depth * gaze[:, 0]
    iris_y = eyeball_y + depth * gaze[:, 1]
    planar = torch.sqrt(gaze[:, 0] ** 2 + gaze[:, 1] ** 2)
    straight = planar < 1e-6  # looking into the camera: any direction will do
    along_x = torch.where(straight, torch.ones_like(planar), gaze[:, 0] / planar.clamp(min=1e-6))
    along_y = torch.where(straight, torch.zeros_like(planar), gaze[:, 1] / planar.clamp(min=1e-6))
    foreshortening = (-gaze[:, 2]).clamp(min=0.1)
    return iris_x, iris_y, along_x, along_y, foreshortening


def _eyeball(
    p: dict[str, torch.Tensor],
    t: torch.Tensor,
    below_upper_lid: torch.Tensor,
    rho: torch.Tensor,
    angle: torch.Tensor,
    glint_dx: torch.Tensor,
    glint_dy: torch.Tensor,
) -> torch.Tensor:
    """Sclera, iris, pupil and glint, before masking by the eyelids."""
    lid_shadow = 1 - 0.3 * _falloff(below_upper_lid.clamp(min=0) / 1.5)
    sclera = p["sclera_brightness"] * p["skin_tone"] * (1 - 0.3 * t**4) * lid_shadow
    streaks = p["streak_strength"] * torch.sin(p["streak_count"] * angle + p["streak_phase"])
    ring = torch.sigmoid((rho - 0.8) / 0.07)  # the limbus: the iris darkens towards its edge
    iris = p["iris_brightness"] * (1 + streaks * (1 - ring)) * (1 - p["limbus_darkness"] * ring) * lid_shadow
    pupil = 0.02
    radius_edge = EDGE / p["iris_radius"]
    in_iris = torch.sigmoid((1 - rho) / radius_edge)
    in_pupil = torch.sigmoid((p["pupil_ratio"] - rho) / radius_edge)
    ball = sclera * (1 - in_iris) + iris * in_iris
    ball = ball * (1 - in_pupil) + pupil * in_pupil
    gx = glint_dx - p["glint_x"] * p["iris_radius"]
    gy = glint_dy - p["glint_y"] * p["iris_radius"]
    glint = p["glint_strength"] * _falloff((gx * gx + gy * gy) / (2 * 0.6**2)) * in_iris
    return ball + glint


def _skin(
    p: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    t: torch.Tensor,
    v: torch.Tensor,
    upper: torch.Tensor,
    lower: torch.Tensor,
    size: tuple[int, int],
) -> torch.Tensor:
    """Skin around the eye: tone, lighting, corner shadows, crease, lashes, brow bone, cheek and brow,
    with a texture of pores and wrinkles and hair in the brow."""
    light = p["light_strength"] * (
        torch.cos(p["light_angle"]) * (x / REFERENCE_WIDTH - 0.5) * 2
        + torch.sin(p["light_angle"]) * (y / REFERENCE_HEIGHT - 0.5) * 2
    )
    corner = t.abs() - 1
    shadow = p["corner_shadow"] * _falloff((corner / 0.3) ** 2 + (v / 4) ** 2)
    wide = (1 - (t / 1.15) ** 2).clamp(min=0)
    crease_v = -(p["upper_height"] + p["crease_gap"]) * wide * (2 - wide)
    crease = p["crease_darkness"] * _falloff(((v - crease_v) / 1.1) ** 2) * wide
    near_lid = (1 - t * t).clamp(min=0)
    near_lid = near_lid * (2 - near_lid)
    lash = p["lash_darkness"] * _falloff((v - upper + 0.6) ** 2) * near_lid * (1 + 0.3 * t)
    lower_line = 0.06 * _falloff(((v - lower - 0.6) / 0.8) ** 2) * near_lid
    cheek = p["cheek_brightness"] * torch.sigmoid((v - p["lower_height"] - 3) / 3)
    brow_bone = p["cheek_brightness"] * torch.sigmoid((crease_v - v) / 2)
    seed = p["texture_seed"]
    height, width = size
    pores = value_noise(seed, size, (height, width)) + value_noise(seed + 1, size, (height // 3, width // 3))
    hair = value_noise(seed + 2, size, (height, max(width // 6, 2)))  # strands: fast across, slow along
    brow = p["brow_darkness"] * torch.sigmoid((p["brow_y"] - y) / 1.5) * (1 + 0.6 * p["texture"] * hair)
    skin = p["skin_tone"] + light - shadow - crease - lash - lower_line + cheek + brow_bone - brow
    skin = skin + 0.012 * p["texture"] * pores  # small: equalisation stretches flat skin many times
    skin = skin + _lid_relief(p, t, v, upper, lower, crease_v, wide, size)
    skin = skin - _side_shadow(p, x, y)
    # Saturate softly: a hard clip would leave flat white plateaus that equalisation turns into edges.
    return 1 - torch.nn.functional.softplus((1 - skin) * 12) / 12


def _lid_relief(
    p: dict[str, torch.Tensor],
    t: torch.Tensor,
    v: torch.Tensor,
    upper: torch.Tensor,
    lower: torch.Tensor,
    crease_v: torch.Tensor,
    wide: torch.Tensor,
    size: tuple[int, int],
) -> torch.Tensor:
    """The skin's relief around the lids, which real eyes show and a flat skin lacks.

    A bright band that follows the lower lid with a fold line below it, a bright
    upper lid below the crease and a brow bone above it, and blotches and horizontal
    lines larger than the pores. Each term is exactly zero when its parameter is, so
    :data:`PREVIOUS_VERSION` draws the previous simulator bit for bit.
    """
    below = v - lower  # > 0 under the lower lid's margin, following its curve
    under_wide = (1 - (t / 1.4) ** 2).clamp(min=0)
    under_eye = p["under_eye"] * torch.sigmoid((below - 2.5) / 1.5)
    seed = p["texture_seed"]
    height, width = size
    lines = value_noise(seed + 5, size, (max(height // 2, 2), max(width // 10, 2)))  # fast across, slow along
    fold = p["lower_fold"] * _falloff(((below - 5.0) / 0.9) ** 2) * under_wide * (1 + 0.5 * lines)
    lid = p["lid_highlight"] * torch.sigmoid((v - crease_v - 0.8) / 0.6) * torch.sigmoid((upper - 1.5 - v) / 0.6)
    brow_bone = p["brow_bone"] * torch.sigmoid((crease_v - 2.0 - v) / 2.0)
    blotches = value_noise(seed + 4, size, (max(height // 6, 2), max(width // 6, 2)))
    wrinkles = p["wrinkles"] * (0.03 * blotches + 0.02 * lines)
    return under_eye - fold + lid * wide + brow_bone + wrinkles


def _side_shadow(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Darkening of the skin's left third, full above the eye and about a third of it below.

    Its shape follows the real patches' mean image: left minus right, per band of
    rows from the top, -43, -47, -38, -17, -15, -15, -8 grey levels
    (``simulator_gap.py --statistics``). Zero when ``side_shadow`` is.
    """
    left = torch.sigmoid((0.3 * REFERENCE_WIDTH - x) / (0.12 * REFERENCE_WIDTH))
    above = 0.35 + 0.65 * torch.sigmoid((13.0 - y) / 2.5)
    return p["side_shadow"] * left * above


def _camera(image: torch.Tensor, p: dict[str, torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """What the camera adds, none of which moves a landmark: lens blur, sensor noise, then gain with soft
    saturation (after the noise, so over-exposed skin is flat white, as in the real patches)."""
    sigma = p["blur"][:, 0, 0] * (size[0] / REFERENCE_HEIGHT)  # reference pixels -> output pixels
    noisy = _gaussian_blur(image, sigma) + p["noise"] * value_noise(p["texture_seed"] + 3, size, size)
    exposed = 1 - torch.nn.functional.softplus((1 - noisy * p["exposure"]) * 12) / 12
    return exposed.clamp(0.0, 1.0)


def _gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """Blur each (H, W) image with its own sigma: one separable grouped convolution, edges replicated."""
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets[None] / sigma.clamp(min=1e-3)[:, None]) ** 2)
    kernel = kernel / kernel.sum(1, keepdim=True)  # sigma -> 0 gives the identity kernel
    n = len(images)
    x = torch.nn.functional.pad(images[None], (radius, radius, radius, radius), mode="replicate")
    x = torch.nn.functional.conv2d(x, kernel.view(n, 1, 1, -1), groups=n)
    x = torch.nn.functional.conv2d(x, kernel.view(n, 1, -1, 1), groups=n)
    return x[0]


def value_noise(seeds: torch.Tensor, size: tuple[int, int], grid: tuple[int, int]) -> torch.Tensor:
    """(N, H, W) smooth noise in [-1, 1): a ``grid`` of hashed random values per image, upsampled bilinearly.

    Values come from an integer hash of (image seed, grid cell), not from a
    generator stream, so an image's texture does not depend on how the batch
    was chunked or which other images were drawn with it.
    """
    seeds = seeds.reshape(-1).long()
    cells = torch.arange(grid[0] * grid[1], dtype=torch.int64)
    h = (seeds[:, None] * 0x9E3779B1 + cells[None] * 0x85EBCA77) & 0xFFFFFFFF
    for multiplier in (0x7FEB352D, 0x846CA68B):
        h = ((h ^ (h >> 16)) * multiplier) & 0xFFFFFFFF
    h = h ^ (h >> 16)
    values = (h.float() / 2**32 * 2 - 1).view(-1, 1, *grid)
    if grid == size:
        return values[:, 0]
    return torch.nn.functional.interpolate(values, size=size, mode="bilinear", align_corners=False)[:, 0]


def _falloff(distance: torch.Tensor) -> torch.Tensor:
    """exp(-distance), cut at distance 30: far pixels would otherwise produce subnormal floats,
    which CPUs process tens of times slower (this alone doubled the simulator's speed)."""
    return torch.exp(-distance.clamp(max=30.0))


def _margin_points(params: EyeParams) -> torch.Tensor:
    """(N, 16, 2) eyelid-margin points: left corner, upper lid, right corner, lower lid back."""
    k = torch.arange(MARGIN_POINTS // 2 + 1, dtype=torch.float32)
    t_upper = -torch.cos(math.pi * k / (MARGIN_POINTS // 2))  # -1 ... 1, both corners included
    t_lower = torch.cos(math.pi * k[1:-1] / (MARGIN_POINTS // 2))  # back from right to left, no corners
    t = torch.cat((t_upper, t_lower))[None, :]
    p = {f.name: getattr(params, f.name)[:, None] for f in fields(params)}
    upper, lower = _lid_curves(t, p)
    v = torch.cat((upper[:, : len(t_upper)], lower[:, len(t_upper) :]), dim=1)
    u = t * p["half_width"]
    cos_r, sin_r = torch.cos(p["roll"]), torch.sin(p["roll"])
    return torch.stack((p["centre_x"] + cos_r * u - sin_r * v, p["centre_y"] + sin_r * u + cos_r * v), dim=2)


def _iris_points(
    params: EyeParams,
    iris_x: torch.Tensor,
    iris_y: torch.Tensor,
    along_x: torch.Tensor,
    along_y: torch.Tensor,
    foreshortening: torch.Tensor,
) -> torch.Tensor:
    """(N, 32, 2) points on the iris ellipse at equal parameter steps."""
    phi = torch.arange(IRIS_POINTS, dtype=torch.float32) * (2 * math.pi / IRIS_POINTS)
    radius = params.iris_radius[:, None]
    along = radius * foreshortening[:, None] * torch.cos(phi)[None]
    across = radius * torch.sin(phi)[None]
    ax, ay = along_x[:, None], along_y[:, None]
    return torch.stack((iris_x[:, None] + along * ax - across * ay, iris_y[:, None] + along * ay + across * ax), dim=2)


def _rescale_points(value: torch.Tensor, drawn: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """(..., 2) pixel points of a ``drawn``-size image -> ``size`` pixels (pixel centres map linearly)."""
    scale = value.new_tensor([size[1] / drawn[1], size[0] / drawn[0]])
    return (value + 0.5) * scale - 0.5


def _to_pixels(points: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Reference-frame points -> output pixels (centre of the top-left pixel at 0, 0)."""
    scale = points.new_tensor([size[1] / REFERENCE_WIDTH, size[0] / REFERENCE_HEIGHT])
    return (points * scale - 0.5).float()
