"""The hooks refinekit calls: this plugin's datasets, recipe and evaluation task. Nothing else lives here."""

from __future__ import annotations

from refinekit.plugins.hookspecs import Register, hookimpl
from refinekit_digits.recipe import DIGITS_SIMGAN


@hookimpl
def register_datasets(register: Register) -> None:
    register(
        "digits-fonts",
        "refinekit_digits.fonts:load_digits_fonts",
        "Digits 0-9 rendered from matplotlib's fonts, augmented, labelled",
    )
    register(
        "mnist-sample",
        "refinekit_digits.mnist_sample:load_mnist_sample",
        "5,000 real MNIST digits shipped with the plugin (train 4,000 / test 1,000)",
    )
    register(
        "sklearn-digits",
        "refinekit_digits.sklearn_digits:load_sklearn_digits",
        "scikit-learn's 1,797 handwritten 8x8 digits, framed like MNIST",
    )
    register(
        "mnist-idx",
        "refinekit_digits.idx:load_mnist_idx",
        "MNIST-style IDX image+label files (gzipped or not)",
        detect="refinekit_digits.idx:is_idx",
    )
    register(
        "usps-h5",
        "refinekit_digits.usps:load_usps_h5",
        "USPS digits in one .h5 file (train/data, train/target, ...)",
        detect="refinekit_digits.usps:is_usps_h5",
    )
    register(
        "digit-class-folders",
        "refinekit_digits.folders:load_digit_class_folders",
        "Labelled digit images in root/0 ... root/9 folders",
        detect="refinekit_digits.folders:is_digit_class_folders",
    )


@hookimpl
def register_recipes(register: Register) -> None:
    register(DIGITS_SIMGAN)


@hookimpl
def register_tasks(register: Register) -> None:
    register(
        "digits",
        "refinekit_digits.task:DigitsTask",
        "10-way digit classifier (small CNN), scored by accuracy on held-out real digits",
    )
