"""The built-in components' hooks: names, descriptions and lazy references, nothing heavier.

Each namespace below is one built-in plugin, registered under its name
(``refinekit plugins`` lists them). Factories are named as ``"module:attribute"``
and imported on first use, so listing recipes or plugins never imports torch.
"""

from __future__ import annotations

from refinekit.components.recipes import SIMGAN
from refinekit.plugins.hookspecs import Register, hookimpl


class Refiners:
    @staticmethod
    @hookimpl
    def register_refiners(register: Register) -> None:
        register(
            "simgan-resnet",
            "refinekit.components.refiners:SimGANResNet",
            "The paper's refiner: conv 64, 4 ResNet blocks, 1x1 conv, tanh",
        )
        register(
            "timm-unet",
            "refinekit.components.refiners:TimmUNetRefiner",
            "U-Net decoder on a timm encoder (random or local weights)",
        )


class Discriminators:
    @staticmethod
    @hookimpl
    def register_discriminators(register: Register) -> None:
        register(
            "local-patch",
            "refinekit.components.discriminators:LocalPatchDiscriminator",
            "The paper's per-patch discriminator (9x14 logits at 35x55)",
        )
        register(
            "global",
            "refinekit.components.discriminators:GlobalDiscriminator",
            "One real/refined decision per image",
        )
        register(
            "multi-scale",
            "refinekit.components.discriminators:MultiScaleDiscriminator",
            "Local patch discriminators on the image pooled by 1, 2 and 4: patches up to the whole eye",
        )


class Regularizers:
    @staticmethod
    @hookimpl
    def register_regularizers(register: Register) -> None:
        register(
            "l1",
            "refinekit.components.regularizers:l1_regularizer",
            "Pixel-space L1 between refined and synthetic (paper's eyes setting)",
        )
        register(
            "feature",
            "refinekit.components.regularizers:SelfRegularizer",
            "L1 in a feature space psi: channel-mean, low-pass, sobel, timm",
        )


class Datasets:
    @staticmethod
    @hookimpl
    def register_datasets(register: Register) -> None:
        register(
            "image-folder",
            "refinekit.components.datasets:load_image_folder",
            "Any folder of images, optional name.json sidecars",
            detect="refinekit.components.datasets:is_image_folder",
        )


class Recipes:
    @staticmethod
    @hookimpl
    def register_recipes(register: Register) -> None:
        register(SIMGAN)


# plugin name -> its hooks, in load order
BUILTIN_PLUGINS = {
    "refiners": Refiners,
    "discriminators": Discriminators,
    "regularizers": Regularizers,
    "datasets": Datasets,
    "recipes": Recipes,
}
