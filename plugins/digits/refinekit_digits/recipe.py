"""The ``digits-simgan`` recipe: rendered font digits refined towards real MNIST handwriting."""

from __future__ import annotations

from refinekit.plugins.recipe import Recipe

CONFIG: dict = {
    "image": {"channels": 1, "height": 28, "width": 28},
    "synthetic": {"name": "digits-fonts", "options": {"count": 10000}},
    # The real side is the train split only: the test split is held out for evaluation.
    "real": {"name": "mnist-sample", "options": {"split": "train"}},
    "refiner": {"name": "simgan-resnet", "options": {"features": 32, "blocks": 3}},
    "discriminator": {"name": "local-patch"},
    "regularizer": {"name": "l1"},
    # Measured (README): with 1.0 the refined digits train a classifier that reads
    # held-out real digits better than the raw renders do; 0.5 looked as real but
    # blurred away detail, and the classifier got worse.
    "reg_weight": 1.0,
    "batch_size": 32,
    "buffer_size": 3200,
    "optim": {"name": "adam", "lr_refiner": 2e-4, "lr_discriminator": 2e-4},
}

SCHEDULES: dict[str, dict] = {
    "smoke": {
        "schedule": {"refiner_pretrain_steps": 5, "discriminator_pretrain_steps": 5, "steps": 10, "k_g": 1, "k_d": 1},
        "sample_every": 10,
        "checkpoint_every": 20,
    },
    "quick": {
        # benchmarks/precision.py: bf16 autocast runs a round 1.65x as fast as fp32 on an AMX CPU; auto keeps fp32
        # where bf16 is not faster. plugins/digits/benchmarks/transfer.py: 2,000 rounds, not 600, train a classifier
        # that reads real digits better on every refiner seed (README), in 2 minutes (bf16) to 3.3 (fp32) on a
        # 2-core Xeon
        "precision": "auto",
        "schedule": {
            "refiner_pretrain_steps": 100,
            "discriminator_pretrain_steps": 100,
            "steps": 2000,
            "k_g": 1,
            "k_d": 1,
        },
        "sample_every": 100,
        "checkpoint_every": 200,
    },
}

DIGITS_SIMGAN = Recipe(
    name="digits-simgan",
    description="Rendered font digits refined to look like real MNIST handwriting (28x28, 1 channel)",
    config=CONFIG,
    schedules=SCHEDULES,
    default_schedule="quick",
    path_datasets=("mnist-idx", "usps-h5", "digit-class-folders", "image-folder"),
    task="digits",
    pretrained="refinekit_digits:pretrained/digits-simgan.safetensors",
)
