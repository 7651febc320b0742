"""The Python API behind the CLI: resolve_config, prepare and train."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

import refinekit
from refinekit.config import deep_merge
from refinekit.errors import CheckpointError, ConfigError, DataError
from refinekit.plugins.registry import get_recipe
from refinekit.training.loop import StepReport
from refinekit.training.setup import prepare, resolve_config

SMALL = {"refiner__options": {"features": 8, "blocks": 1}, "discriminator__options": {"widths": [8, 8, 8, 8]}}


def test_train_takes_dotted_keys_as_double_underscores(tiny_domain, tmp_path) -> None:
    reports: list[StepReport] = []
    result = refinekit.train(
        "tiny", tmp_path / "run", schedule__steps=2, reg_weight=0.5, callbacks=[lambda t, r: reports.append(r)], **SMALL
    )
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["schedule"]["steps"] == 2 and config["reg_weight"] == 0.5
    assert [r.step for r in reports] == list(range(1, 9)) and reports[-1].total == 8
    assert [r.phase for r in reports][3:6] == ["refiner-pretrain", "discriminator-pretrain", "discriminator-pretrain"]
    assert result.step == 8 and set(result.metrics) >= {"refiner_adv", "discriminator_loss"}
    assert result.refiner_path == tmp_path / "run" / "refiner.safetensors"


def image_folder(path, level: int, count: int = 6):
    path.mkdir()
    rng = np.random.default_rng(level)
    for i in range(count):
        Image.fromarray(np.clip(rng.normal(level, 15, (20, 24)), 0, 255).astype(np.uint8)).save(path / f"{i}.png")
    return path


def test_the_generic_simgan_recipe_trains_on_two_image_folders(tmp_path) -> None:
    synthetic, real = image_folder(tmp_path / "synthetic", 60), image_folder(tmp_path / "real", 180)
    result = refinekit.train(
        "simgan", tmp_path / "run", synthetic=str(synthetic), real=str(real),
        batch_size=4, buffer_size=8, image__height=10, image__width=12, log_every=1,
        schedule__refiner_pretrain_steps=1, schedule__discriminator_pretrain_steps=1, schedule__steps=1, **SMALL,
    )
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["synthetic"] == {"name": "image-folder", "path": str(synthetic), "limit": None, "options": {}}
    assert result.step == 3
    refiner = refinekit.load_refiner(result.refiner_path)
    assert refiner.refinekit_image_size == (10, 12)


def test_a_path_that_does_not_exist_is_a_data_error(tmp_path) -> None:
    with pytest.raises(DataError, match="nowhere does not exist; check the path given to --synthetic / --real"):
        resolve_config("simgan", synthetic=str(tmp_path / "nowhere"), real=str(tmp_path))


def test_missing_path_for_image_folder_is_a_data_error(tmp_path) -> None:
    config = resolve_config("simgan", overrides=["batch_size=4", "buffer_size=8"])
    with pytest.raises(DataError, match="image-folder needs a path"):
        prepare(config, tmp_path / "run")


def test_prepare_refuses_to_overwrite_a_run_and_to_resume_nothing(tiny_domain, tmp_path) -> None:
    config = resolve_config("tiny", overrides={"schedule.steps": 1, **{k.replace("__", "."): v for k, v in SMALL.items()}})
    with pytest.raises(CheckpointError, match="--resume: there is no checkpoint.safetensors in .*; start without --resume"):
        prepare(config, tmp_path / "run", resume=True)
    prepare(config, tmp_path / "run").fit()
    with pytest.raises(ConfigError, match="already holds a run .*pass --resume to continue it, or choose another --out"):
        prepare(config, tmp_path / "run")


def test_resume_allows_only_the_resumable_keys_to_change(tiny_domain, tmp_path) -> None:
    overrides = {"schedule.steps": 1, **{k.replace("__", "."): v for k, v in SMALL.items()}}
    prepare(resolve_config("tiny", overrides=overrides), tmp_path / "run").fit()
    changed = resolve_config("tiny", overrides={**overrides, "optim.lr_refiner": 0.5, "refiner.options": {"features": 4}})
    with pytest.raises(ConfigError, match=r"--resume: optim.lr_refiner, refiner.options differ from the checkpoint"):
        prepare(changed, tmp_path / "run", resume=True)
    longer = resolve_config("tiny", overrides={**overrides, "schedule.steps": 3, "log_every": 2})
    trainer = prepare(longer, tmp_path / "run", resume=True)
    assert trainer.step == 7 and trainer.total_steps == 9 and trainer.config.log_every == 2


def test_resume_continues_a_run_whose_recipe_defaults_changed_since(tiny_domain, tmp_path) -> None:
    """A newer refinekit may change a recipe's defaults: the run resumes as it was started, and says what it asks."""
    overrides = {"schedule.steps": 1, **{k.replace("__", "."): v for k, v in SMALL.items()}}
    prepare(resolve_config("tiny", overrides=overrides), tmp_path / "run").fit()
    tiny = get_recipe("tiny")
    newer = replace(tiny, config=deep_merge(tiny.config, {"reg_weight": 3.0, "synthetic": {"options": {"bright": 70}}}))
    trainer = prepare(resolve_config(newer, overrides=overrides), tmp_path / "run", resume=True)
    assert (trainer.config.reg_weight, trainer.config.synthetic.options) == (1.0, {"bright": 60})
    trainer.folder_lock.release()
    # a newer recipe's other network: the run keeps the one its checkpoint's weights fit
    other_refiner = replace(tiny, config=deep_merge(tiny.config, {"refiner": {"name": "residual"}}))
    trainer = prepare(resolve_config(other_refiner, overrides=overrides), tmp_path / "run", resume=True)
    assert trainer.config.refiner.name == "simgan-resnet"
    trainer.folder_lock.release()
    # what the request sets is still compared, and so is which data the run trains on
    with pytest.raises(ConfigError, match=r"--resume: reg_weight differ from the checkpoint"):
        prepare(resolve_config(newer, overrides={**overrides, "reg_weight": 3.0}), tmp_path / "run", resume=True)
    with pytest.raises(ConfigError, match=r"--resume: refiner.name differ from the checkpoint"):
        prepare(resolve_config("tiny", overrides={**overrides, "refiner.name": "residual"}), tmp_path / "run",
                resume=True)
    other_data = replace(tiny, config=deep_merge(tiny.config, {"synthetic": {"name": "elsewhere"}}))
    with pytest.raises(ConfigError, match=r"--resume: synthetic.name differ from the checkpoint"):
        prepare(resolve_config(other_data, overrides=overrides), tmp_path / "run", resume=True)


def test_resume_without_steps_keeps_the_runs_own_steps(tiny_domain, tmp_path) -> None:
    """``--steps 1`` then ``--resume`` alone continues to 1 round, not to the recipe's 6."""
    overrides = {**{k.replace("__", "."): v for k, v in SMALL.items()}}
    prepare(resolve_config("tiny", overrides={**overrides, "schedule.steps": 1}), tmp_path / "run").fit()
    trainer = prepare(resolve_config("tiny", overrides=overrides), tmp_path / "run", resume=True)
    assert trainer.config.schedule.steps == 1 and trainer.total_steps == 7


def test_bad_component_options_are_config_errors(tiny_domain, tmp_path) -> None:
    config = resolve_config("tiny", overrides=["refiner.options.featurs=8"])
    with pytest.raises(ConfigError, match=r"refiner.options \{'featurs': 8\} do not fit refiner 'simgan-resnet' .* it takes: features, blocks"):
        prepare(config, tmp_path / "run")


def test_real_path_keeps_the_options_and_limit_set_for_its_loader(tmp_path) -> None:
    real = image_folder(tmp_path / "real", 180)
    config = resolve_config(
        "simgan", real=str(real), overrides=['real={name="image-folder", limit=3, options={skip_bad=true}}']
    )
    assert config.real.model_dump() == {"name": "image-folder", "path": str(real), "limit": 3, "options": {"skip_bad": True}}
    other = resolve_config("simgan", real=str(real), overrides=['real={name="elsewhere", limit=3, options={x=1}}'])
    assert (other.real.name, other.real.limit, other.real.options) == ("image-folder", 3, {})  # x=1 was elsewhere's


def test_resume_from_a_checkpoint_without_config_says_so(tiny_domain, tmp_path) -> None:
    from safetensors.torch import save_file

    from refinekit.weights.files import CHECKPOINT_FORMAT, FORMAT_VERSION

    (tmp_path / "run").mkdir()
    save_file({"x": torch.zeros(1)}, str(tmp_path / "run" / "checkpoint.safetensors"),
              metadata={"format": CHECKPOINT_FORMAT, "format_version": FORMAT_VERSION, "step": "1"})
    with pytest.raises(CheckpointError, match=r"checkpoint.safetensors: metadata 'config' is missing"):
        prepare(resolve_config("tiny"), tmp_path / "run", resume=True)
