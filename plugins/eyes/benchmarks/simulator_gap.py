"""How far the eye simulator is from real eyes, and whether its ranges close the gap.

Each variant is the ``eyes-sim`` dataset with a few ``--set``-style overrides.
Its 2,000 rendered eyes are told from the real eyes that training may use (the
``real_holdout`` split's training part, never the held-out eyes that
``benchmarks/quality.py`` scores on) by the project's two-sample classifier,
cross-fitted over two halves. 50% = indistinguishable. Fitting a simulator to
the held-out eyes would flatter every later figure, so this never reads them.

    python plugins/eyes/benchmarks/simulator_gap.py [--variants current,gaze-narrow,...]

``--views`` says where a simulator's gap is: the same test on views of both sets
that keep only one kind of difference (coarse layout and shading, texture and
edges, or the grey-level histogram)::

    python plugins/eyes/benchmarks/simulator_gap.py --views --variants current,drawn-at-working-size

``--parameters`` asks which of the shipped simulator's scene parameters make an
eye look real: one classifier, trained on half of the rendered and half of the real
eyes, scores the other half; for each parameter it prints the mean logit (> 0 =
judged real) of the rendered eyes in each fifth of that parameter's range, and
the real eyes' mean logit beside them::

    python plugins/eyes/benchmarks/simulator_gap.py --parameters

With ``--refiner NAME_OR_FILE`` (a pretrained refiner's name, or a refiner file)
``--parameters`` and ``--bands`` refine the rendered eyes first: what still gives a
refined eye away is what the simulator must change, because a refiner held to its
input cannot::

    python plugins/eyes/benchmarks/simulator_gap.py --parameters --refiner eyes-simgan

``--statistics`` prints the two figures the simulator's layout was fitted to, for
each variant beside the real eyes: the mean grey level of every other image row
(after equalisation, where brightness sits from brow to cheek) and percentiles of
the iris's position (the darkest 9x9 window)::

    python plugins/eyes/benchmarks/simulator_gap.py --statistics --variants current,previous-version

It also prints how much darker each image's left edge is than its right (mean
grey level of the 11 leftmost minus the 11 rightmost columns, per band of 5 rows),
and the mean grey level of the top 9 rows (crease and brow) per fifth of the width.

``--twins`` asks how close each eye comes to its nearest training real eye (the
root-mean-square grey-level difference, 0-255): 300 real eyes against the other
900, then each variant's eyes (refined with ``--refiner``). Real eyes come from a
few people filmed many times, so most have a near twin; an eye drawn from scratch
has none, and a classifier that remembers faces tells it apart by that alone::

    python plugins/eyes/benchmarks/simulator_gap.py --twins --variants current --refiner eyes-simgan

``--bands`` asks where in the image the classifier finds its evidence: trained
once as for ``--parameters``, it scores rendered eyes whose rows in one band are
replaced by the same rows of a real eye, and real eyes given a rendered band.
A band that moves the logits far towards the other side is where the simulator
differs most::

    python plugins/eyes/benchmarks/simulator_gap.py --bands --variants current,relief-version
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields

import kornia
import numpy as np
import torch
from refinekit_eyes.eyes_sim import simulator_ranges
from refinekit_eyes.recipe import UNCALIBRATED_RANGES
from refinekit_eyes.simulator import PREVIOUS_VERSION, RELIEF_VERSION, EyeParams, range_overrides, sample_params

from refinekit.data.heldout import split_real
from refinekit.data.image_set import to_float
from refinekit.data.loading import load_dataset
from refinekit.errors import RefinekitError
from refinekit.evaluation.realism import cross_fitted_accuracy, train_classifier
from refinekit.evaluation.refined import RefineFn, refine_images
from refinekit.refine.pipeline import load_refiner
from refinekit.training.setup import resolve_config

RECIPE = "eyes-simgan"
RENDER_SEED = 777  # no training run uses it
TWIN_REFERENCE, TWIN_COUNT = 900, 300  # --twins: the training real eyes searched, and the eyes of each set measured
TWIN_DISTANCE = 20.0  # grey levels: about the median distance from a real eye to its nearest other real eye
UNCALIBRATED = range_overrides(UNCALIBRATED_RANGES)  # the geometry every variant before the calibration was drawn with
PREVIOUS = [*UNCALIBRATED, *range_overrides(PREVIOUS_VERSION)]
# The range variants were measured on the previous simulator, so they change it, not the current one.
RANGE_CHANGES: dict[str, list[str]] = {
    "drawn-at-working-size": ["synthetic.options.camera_size=[35,55]"],  # equalised at 35x55, not resized
    "gaze-narrow": ["synthetic.options.yaw=[-15,15]", "synthetic.options.pitch=[-15,10]"],
    "iris-large": ["synthetic.options.iris_radius=[9.5,12]"],
    "blur-more": ["synthetic.options.blur=[0.8,1.6]"],
    "texture-less": ["synthetic.options.texture=[0,0.4]"],
    "noise-less": ["synthetic.options.noise=[0,0.002]"],
    "all-of-the-above": [
        "synthetic.options.yaw=[-15,15]",
        "synthetic.options.pitch=[-15,10]",
        "synthetic.options.iris_radius=[9.5,12]",
        "synthetic.options.blur=[0.8,1.6]",
        "synthetic.options.texture=[0,0.4]",
        "synthetic.options.noise=[0,0.002]",
    ],
}
VARIANTS: dict[str, list[str]] = {
    "current": [],
    "uncalibrated": UNCALIBRATED,  # before the recipe calibrated the geometry (refinekit_eyes.recipe.CALIBRATED_RANGES)
    "relief-version": [*UNCALIBRATED, *range_overrides(RELIEF_VERSION)],  # before the side shadow
    "previous-version": PREVIOUS,
    **{name: [*PREVIOUS, *change] for name, change in RANGE_CHANGES.items()},
}


def _blurred(images: np.ndarray, sigma: float) -> torch.Tensor:
    size = 2 * int(3 * sigma) + 1
    return kornia.filters.gaussian_blur2d(torch.from_numpy(images).float(), (size, size), (sigma, sigma), "replicate")


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    return images.round().clamp(0, 255).to(torch.uint8).numpy()


def _shuffled_pixels(images: np.ndarray) -> np.ndarray:
    """Each image's pixels in a random order: only its grey-level histogram is left."""
    flat = images.reshape(len(images), -1)
    order = np.argsort(np.random.default_rng(0).random(flat.shape), axis=1)
    return np.take_along_axis(flat, order, axis=1).reshape(images.shape)


VIEWS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "as drawn": lambda images: images,
    "low-pass, sigma 2 px (layout, shading)": lambda images: _to_uint8(_blurred(images, 2.0)),
    "high-pass, sigma 1.5 px (texture, edges)": lambda images: _to_uint8(
        torch.from_numpy(images).float() - _blurred(images, 1.5) + 128
    ),
    "pixels shuffled (histogram only)": _shuffled_pixels,
}


def training_real() -> np.ndarray:
    config = resolve_config(RECIPE)
    trainable, _ = split_real(load_dataset(config.real, config.image, 0), config.real_holdout)
    return trainable.images[np.random.default_rng(5).permutation(len(trainable))]


def rendered(overrides: list[str], count: int, refiner: RefineFn | None = None) -> np.ndarray:
    """The variant's first ``count`` eyes of ``RENDER_SEED``, refined by ``refiner`` when one is given."""
    config = resolve_config(RECIPE, overrides=[*overrides, f"synthetic.options.count={count}"])
    images = load_dataset(config.synthetic, config.image, RENDER_SEED).images
    return images if refiner is None else refine_images(refiner, images, "cpu")


def realism(fake: np.ndarray, real: np.ndarray) -> float:
    half = len(real) // 2
    return cross_fitted_accuracy("gap", fake[:half], real[:half], fake[half : 2 * half], real[half : 2 * half], 0)


def print_statistics(name: str, images: np.ndarray) -> None:
    """Mean grey level of every other row, and the iris position's 5/25/50/75/95th percentiles."""
    grey = torch.from_numpy(images[:, :1]).float()
    rows = grey.mean(dim=(0, 1, 3))[::2].round().int().tolist()
    smooth = torch.nn.functional.avg_pool2d(grey, 9, stride=1, padding=4, count_include_pad=False)[:, 0]
    darkest = smooth.flatten(1).argmin(1)
    y, x = (darkest // smooth.shape[2]).float(), (darkest % smooth.shape[2]).float()
    q = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])
    print(f"{name}: row means {rows}")
    print(f"{name}: iris x percentiles {torch.quantile(x, q).tolist()}, y {torch.quantile(y, q).tolist()}")
    edge = images.shape[3] // 5
    sides = grey[:, :, :, :edge].mean(dim=(0, 1, 3)) - grey[:, :, :, -edge:].mean(dim=(0, 1, 3))
    bands = [round(float(band.mean())) for band in sides.split(5)]
    print(f"{name}: left minus right edge, per band of 5 rows {bands}")
    top = [round(float(part.mean())) for part in grey[:, :, :9].mean(dim=(0, 1, 2)).tensor_split(5)]
    print(f"{name}: top 9 rows' mean, per fifth of the width {top}", flush=True)


def parameter_effects(name: str, real: np.ndarray, refiner: RefineFn | None) -> None:
    """Print, per scene parameter, the classifier's mean logit on rendered eyes by fifth of the parameter."""
    n = len(real)
    fake = rendered(VARIANTS[name], 2 * n, refiner)
    # eyes-sim draws its scenes first from a generator seeded like this one, so these are the scenes of `fake`
    ranges = simulator_ranges(resolve_config(RECIPE, overrides=VARIANTS[name]).synthetic.options)
    params = sample_params(torch.Generator().manual_seed(RENDER_SEED), 2 * n, ranges)
    print(f"{name}{', refined' if refiner else ''}:")
    model = train_classifier(fake[:n], real[: n // 2], RENDER_SEED)
    with torch.no_grad():
        logits = model(to_float(torch.from_numpy(fake[n:]))).numpy()
        real_logit = float(model(to_float(torch.from_numpy(real[n // 2 :]))).mean())
    print(f"real eyes' mean logit {real_logit:+.2f}; rendered eyes' {logits.mean():+.2f}")
    print(f"{'parameter':<18} {'corr':>5}   mean logit by fifth of the parameter, low to high")
    for name in (field.name for field in fields(EyeParams)):
        values = getattr(params, name)[n:].float().numpy()
        if name == "texture_seed" or values.std() == 0:
            continue
        fifth = np.digitize(values, np.quantile(values, [0.2, 0.4, 0.6, 0.8]))
        means = " ".join(f"{logits[fifth == k].mean():+6.2f}" for k in range(5))
        print(f"{name:<18} {np.corrcoef(values, logits)[0, 1]:+.2f}   {means}", flush=True)


BANDS = {
    "top 0-8": slice(0, 9),
    "upper lid 9-15": slice(9, 16),
    "middle 16-22": slice(16, 23),
    "lower lid 23-28": slice(23, 29),
    "bottom 29-34": slice(29, 35),
}  # rows of the 35-row image


def band_swaps(name: str, real: np.ndarray, refiner: RefineFn | None) -> None:
    """Print the mean logit (> 0 = judged real) of rendered eyes given one band of a real eye, and vice versa."""
    n = len(real) // 2
    fake = rendered(VARIANTS[name], 2 * n, refiner)
    model = train_classifier(fake[:n], real[:n], RENDER_SEED)
    fake, real = fake[n : 2 * n], real[n : 2 * n]

    def mean_logit(images: np.ndarray) -> float:
        with torch.no_grad():
            return float(model(to_float(torch.from_numpy(images))).mean())

    print(f"{name}: rendered eyes' mean logit {mean_logit(fake):+.2f}, real eyes' {mean_logit(real):+.2f}")
    for band, rows in BANDS.items():
        given_real, given_rendered = fake.copy(), real.copy()
        given_real[:, :, rows], given_rendered[:, :, rows] = real[:, :, rows], fake[:, :, rows]
        print(
            f"  {band:<16} rendered with a real band {mean_logit(given_real):+6.2f}, "
            f"real with a rendered band {mean_logit(given_rendered):+6.2f}",
            flush=True,
        )


def print_twins(name: str, images: np.ndarray, reference: np.ndarray) -> None:
    """Percentiles of the distance from each image to its nearest ``reference`` image, and how many fall
    within the real eyes' median distance to their own nearest twin (``TWIN_DISTANCE``)."""
    flat = torch.from_numpy(images[:, :1]).float().flatten(1)
    distances = torch.cdist(flat, torch.from_numpy(reference[:, :1]).float().flatten(1)).amin(1)
    distances = distances / flat.shape[1] ** 0.5
    q = torch.quantile(distances, torch.tensor([0.1, 0.5, 0.9])).tolist()
    close = (distances <= TWIN_DISTANCE).float().mean().item() * 100
    print(f"{name:<40} nearest real eye, 10/50/90%: {q[0]:5.1f} {q[1]:5.1f} {q[2]:5.1f}   within "
          f"{TWIN_DISTANCE:.0f}: {close:5.1f}%", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=None, help="comma-separated (default: all; with --parameters: current)")
    parser.add_argument("--views", action="store_true", help="score each variant's views, not only its images")
    parser.add_argument("--parameters", action="store_true", help="which scene parameters look real to the test")
    parser.add_argument("--statistics", action="store_true", help="row brightness and iris position, beside real")
    parser.add_argument("--bands", action="store_true", help="which band of rows the test finds its evidence in")
    parser.add_argument("--twins", action="store_true", help="how close each eye comes to a training real eye")
    parser.add_argument(
        "--refiner", default=None, help="with --parameters, --bands or --twins: refine the rendered eyes first"
    )
    args = parser.parse_args()
    variants = (args.variants or ("current" if args.parameters else ",".join(VARIANTS))).split(",")
    try:  # once, before minutes of rendering and training: a wrong name or file fails here, with its message
        refiner = load_refiner(args.refiner) if args.refiner else None
    except RefinekitError as exc:
        parser.error(f"--refiner: {exc}")
    real = training_real()
    if args.statistics:
        print_statistics("real", real)
        for name in variants:
            print_statistics(name, rendered(VARIANTS[name], len(real)))
        return
    if args.twins:
        reference, others = real[:TWIN_REFERENCE], real[TWIN_REFERENCE : TWIN_REFERENCE + TWIN_COUNT]
        print_twins("real (other training eyes)", others, reference)
        for name in variants:
            print_twins(name, rendered(VARIANTS[name], TWIN_COUNT), reference)
            if refiner is not None:
                print_twins(f"{name}, refined", rendered(VARIANTS[name], TWIN_COUNT, refiner), reference)
        return
    if args.bands:
        for name in variants:
            band_swaps(name, real, refiner)
        return
    if args.parameters:
        for name in variants:
            parameter_effects(name, real, refiner)
        return
    count = 2 * (len(real) // 2)
    print(f"{'variant':<64} {'realism %':>9}   (two-sample accuracy vs {len(real)} training real eyes)")
    views = VIEWS if args.views else {"as drawn": VIEWS["as drawn"]}
    for name in variants:
        fake = rendered(VARIANTS[name], count)
        for view_name, view in views.items():
            label = f"{name}, {view_name}" if args.views else name
            print(f"{label:<64} {realism(view(fake), view(real)) * 100:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
