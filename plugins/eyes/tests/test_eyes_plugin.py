"""The plugin's wiring: registered names, path detection order and the eyes-simgan recipe's configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from refinekit.data.loading import detect_dataset
from refinekit.plugins.registry import Registry, create_discriminator, get_recipe, list_datasets, list_recipes
from refinekit.training.setup import resolve_config

FIXTURES = Path(__file__).parent / "fixtures"
EYE_DATASETS = {"unityeyes", "mpiigaze", "kaggle-h5", "eyes-sim", "mpiigaze-sample"}


def test_registers_datasets_and_recipe_without_problems(eyes_registry: Registry) -> None:
    assert set(list_datasets()) >= EYE_DATASETS
    assert "eyes-simgan" in list_recipes()
    assert eyes_registry.problems == []
    assert eyes_registry.infos["eyes"].components == {
        "dataset": ["unityeyes", "mpiigaze", "kaggle-h5", "eyes-sim", "mpiigaze-sample"],
        "recipe": ["eyes-simgan"],
        "task": ["gaze"],
        "regularizer": ["gaze-consistency"],
    }


def test_recipe_path_datasets_are_registered(eyes_registry: Registry) -> None:
    recipe = get_recipe("eyes-simgan")
    assert set(recipe.path_datasets) <= set(list_datasets())
    assert recipe.default_schedule == "quick"


@pytest.mark.parametrize("schedule", ["quick", "paper"])
def test_every_schedule_is_a_valid_config(eyes_registry: Registry, schedule: str) -> None:
    config = resolve_config("eyes-simgan", schedule=schedule)
    assert (config.image.channels, config.image.height, config.image.width) == (1, 35, 55)
    assert config.synthetic.name == "eyes-sim" and config.real.name == "mpiigaze-sample"
    # the quick schedule's D judges patches up to the whole eye; the paper's is the paper's local-patch D
    assert config.refiner.name == "simgan-resnet"
    assert config.discriminator.name == {"quick": "multi-scale", "paper": "local-patch"}[schedule]
    # the quick schedule holds the gaze with the gaze network's leash; the paper's schedule keeps its L1 leash
    assert config.regularizer.name == {"quick": "gaze-consistency", "paper": "l1"}[schedule]


def test_paper_schedule_follows_section_4_1(eyes_registry: Registry) -> None:
    config = resolve_config("eyes-simgan", schedule="paper")
    assert config.batch_size == 512 and config.optim.name == "sgd"
    # the paper's SGD step of 0.001 on losses summed over D's patches is 0.001 x patches on our mean losses
    discriminator = create_discriminator(config.discriminator.name, channels=1, **config.discriminator.options)
    logits = discriminator(torch.zeros(1, 1, config.image.height, config.image.width))
    patches = logits.shape[2] * logits.shape[3]
    assert patches == 9 * 14
    assert config.optim.lr_refiner == config.optim.lr_discriminator == pytest.approx(0.001 * patches)
    assert config.adversarial.augment == [] and config.adversarial.r1_weight == 0 and config.refiner_ema == 0
    assert not config.refiner.options["coordinates"] and not config.discriminator.options["coordinates"]
    assert (config.schedule.refiner_pretrain_steps, config.schedule.discriminator_pretrain_steps) == (1000, 200)
    assert config.schedule.k_d == 1


def test_paths_are_detected_as_the_right_dataset(
    eyes_registry: Registry, unityeyes_folder: Path, tmp_path: Path
) -> None:
    order = get_recipe("eyes-simgan").path_datasets
    assert detect_dataset(str(unityeyes_folder), order) == "unityeyes"
    assert detect_dataset(str(FIXTURES / "mpiigaze_day01_layout_fixture.mat"), order) == "mpiigaze"
    assert detect_dataset(str(FIXTURES / "kaggle_real_gaze_fixture.h5"), order) == "kaggle-h5"
    (unityeyes_folder / "1.json").unlink()  # now only images: a plain image folder
    for name in ("2.json", "3.json"):
        (unityeyes_folder / name).unlink()
    assert detect_dataset(str(unityeyes_folder), order) == "image-folder"


def test_user_paths_replace_the_embedded_defaults(eyes_registry: Registry, unityeyes_folder: Path) -> None:
    config = resolve_config(
        "eyes-simgan", synthetic=str(unityeyes_folder), real=str(FIXTURES / "kaggle_real_gaze_fixture.h5")
    )
    assert (config.synthetic.name, config.real.name) == ("unityeyes", "kaggle-h5")


def test_switching_the_synthetic_loader_drops_the_recipes_simulator_ranges() -> None:
    """The recipe's ``eyes-sim`` ranges would be unknown options to any other loader; the user's own options stay."""
    from refinekit_eyes.recipe import CALIBRATED_RANGES

    other = resolve_config("eyes-simgan", overrides=['synthetic={name="kaggle-h5", path="gaze.h5"}'])
    assert (other.synthetic.name, other.synthetic.options) == ("kaggle-h5", {})
    own = resolve_config("eyes-simgan", overrides=['synthetic={name="image-folder", path="x", options={skip_bad=true}}'])
    assert own.synthetic.options == {"skip_bad": True}
    same = resolve_config("eyes-simgan", overrides=["synthetic.options.eye_y=[17,17]"])
    assert same.synthetic.options == {**CALIBRATED_RANGES, "eye_y": [17, 17]}
