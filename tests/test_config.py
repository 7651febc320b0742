"""The run configuration: validation that names the key, --set parsing, merge order, the key reference."""

from __future__ import annotations

import pytest

from refinekit.config import TrainConfig, build_config, deep_merge, iter_keys, load_toml, parse_set
from refinekit.errors import ConfigError
from refinekit.plugins.recipe import Recipe
from refinekit.training.setup import resolve_config

DATA = {"synthetic": {"name": "image-folder"}, "real": {"name": "image-folder"}}


def build(**extra) -> TrainConfig:
    return build_config(deep_merge(DATA, extra))


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"bach_size": 8}, "unknown key 'bach_size' (did you mean 'batch_size'?)"),
        ({"schedule": {"kg": 2}}, "unknown key 'schedule.kg' (did you mean 'schedule.k_g'?)"),
        ({"batch_size": "oops"}, "'batch_size': Input should be a valid integer"),
        ({"optim": {"name": "rmsprop"}}, "'optim.name': Input should be 'sgd' or 'adam' (got 'rmsprop')"),
        ({"schedule": {"k_g": 0}}, "'schedule.k_g': Input should be greater than or equal to 1 (got 0)"),
        ({"image": {"channels": 2}}, "'image.channels': Input should be 1 or 3 (got 2)"),
        ({"optim": {"momentum": 1.0}}, "'optim.momentum': Input should be less than 1"),
        ({"batch_size": 8, "buffer_size": 3}, "buffer_size (3) must be 0 or at least batch_size/2 (4)"),
    ],
)
def test_invalid_values_name_the_key(extra, message) -> None:
    with pytest.raises(ConfigError) as err:
        build(**extra)
    assert message in str(err.value)
    assert "refinekit recipes --keys" in str(err.value)
    assert "{'synthetic'" not in str(err.value)  # never the whole config as "input"


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError, match="'batch_size'.*'schedule.steps'"):
        build(batch_size="x", schedule={"steps": -1})


def test_missing_dataset_is_named() -> None:
    with pytest.raises(ConfigError, match="'real': Field required"):
        build_config({"synthetic": {"name": "image-folder"}})


@pytest.mark.parametrize(
    "expression, expected",
    [
        ("batch_size=16", {"batch_size": 16}),
        ("reg_weight=0.25", {"reg_weight": 0.25}),
        ("reg_weight=1e-3", {"reg_weight": 0.001}),
        ("channels_last=false", {"channels_last": False}),
        ("optim.name=adam", {"optim": {"name": "adam"}}),
        ('synthetic.path="my data/x"', {"synthetic": {"path": "my data/x"}}),
        ("synthetic.path=/data/eyes", {"synthetic": {"path": "/data/eyes"}}),
        ("synthetic.path=2024-01-01", {"synthetic": {"path": "2024-01-01"}}),  # a folder, not a TOML date
        ("optim.betas=[0.9, 0.99]", {"optim": {"betas": [0.9, 0.99]}}),
        ("refiner.options.features=8", {"refiner": {"options": {"features": 8}}}),
        ("  schedule.k_g = 3 ", {"schedule": {"k_g": 3}}),
        ("note=a=b", {"note": "a=b"}),
    ],
)
def test_parse_set_reads_values_as_toml_else_text(expression, expected) -> None:
    assert parse_set(expression) == expected


@pytest.mark.parametrize("expression", ["nonsense", "=3", "schedule..k_g=2", "schedule.k-g=2", " =1", ".a=1"])
def test_parse_set_rejects_malformed_expressions(expression) -> None:
    with pytest.raises(ConfigError, match=r"does not parse: expected KEY=VALUE.*--set schedule.k_g=2"):
        parse_set(expression)


def test_set_values_validate_against_the_model() -> None:
    config = build(**deep_merge(parse_set("optim.betas=[0.9, 0.99]"), parse_set("channels_last=false")))
    assert config.optim.betas == (0.9, 0.99) and config.channels_last is False


RECIPE = Recipe(
    name="layers",
    description="tests the merge order",
    config={**DATA, "batch_size": 10, "reg_weight": 1.0, "seed": 1, "log_every": 1},
    schedules={"fast": {"batch_size": 20, "reg_weight": 2.0, "seed": 2}, "paper": {}},
    default_schedule="paper",
)


def test_merge_order_recipe_schedule_file_set(tmp_path) -> None:
    config_file = tmp_path / "run.toml"
    config_file.write_text("batch_size = 30\nreg_weight = 3.0\n[schedule]\nk_g = 4\n")
    config = resolve_config(RECIPE, schedule="fast", config_file=config_file, overrides=["batch_size=40"])
    assert (config.log_every, config.seed, config.reg_weight, config.batch_size) == (1, 2, 3.0, 40)
    assert config.schedule.k_g == 4 and config.schedule.steps == TrainConfig.model_fields["schedule"].default_factory().steps
    assert resolve_config(RECIPE).batch_size == 10  # the default schedule, "paper", changes nothing
    assert resolve_config(RECIPE, overrides={"schedule.k_d": 3}).schedule.k_d == 3  # the API's dict form


def test_unknown_schedule_lists_the_recipes_schedules() -> None:
    with pytest.raises(ConfigError, match="recipe 'layers' has no schedule 'fats'; its schedules: fast, paper"):
        resolve_config(RECIPE, schedule="fats")


def test_config_file_problems_name_the_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="missing.toml does not exist"):
        load_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("batch_size = = 3\n")
    with pytest.raises(ConfigError, match="bad.toml is not valid TOML"):
        load_toml(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[schedule]\nstpes = 3\n")
    with pytest.raises(ConfigError, match="unknown key 'schedule.stpes'"):
        resolve_config(RECIPE, config_file=unknown)


def test_deep_merge_recurses_and_copies() -> None:
    base = {"a": {"b": 1, "c": 2}, "d": 3}
    merged = deep_merge(base, {"a": {"b": 10}, "e": 5})
    assert merged == {"a": {"b": 10, "c": 2}, "d": 3, "e": 5}
    assert base == {"a": {"b": 1, "c": 2}, "d": 3}


def flatten(data: dict, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in data.items():
        if isinstance(value, dict) and key != "options":
            keys |= flatten(value, f"{prefix}{key}.")
        else:
            keys.add(prefix + key)
    return keys


def test_iter_keys_lists_every_leaf_with_type_default_and_description() -> None:
    rows = iter_keys()
    keys = [row[0] for row in rows]
    assert len(keys) == len(set(keys))
    assert set(keys) == flatten(build().model_dump())
    by_key = {row[0]: row for row in rows}
    assert by_key["schedule.k_g"][1:3] == ("int, >= 1", "2")
    assert by_key["synthetic.name"][2] == "required"
    assert by_key["refiner.name"][2] == "'simgan-resnet'"
    assert all(row[3] for row in rows if not row[0].endswith(("name", "options", "path", "limit"))), "undocumented key"


def test_component_options_alone_keep_the_default_component() -> None:
    config = build(**parse_set("refiner.options.features=32"))
    assert config.refiner.name == "simgan-resnet" and config.refiner.options == {"features": 32}
    assert build(regularizer={"options": {"psi": "sobel"}}).regularizer.name == "l1"
    assert build(refiner={"name": "timm-unet"}).refiner.options == {}


COMPONENTS = Recipe(
    name="components",
    description="sets options for its own components",
    config={
        **DATA,
        "refiner": {"name": "simgan-resnet", "options": {"features": 32}},
        "regularizer": {"name": "feature", "options": {"psi": "sobel"}},
    },
    schedules={"quick": {"discriminator": {"options": {"spectral_norm": True}}}},
    default_schedule="quick",
)


@pytest.mark.parametrize(
    ("override", "section", "expected"),
    [
        ("refiner.name='timm-unet'", "refiner", ("timm-unet", {})),
        ("discriminator.name='global'", "discriminator", ("global", {})),  # the schedule's options go as well
        ("regularizer.name='l1'", "regularizer", ("l1", {})),
        # options set with the switch are the user's own, and stay
        ("refiner={name='timm-unet', options={decoder_features=16}}", "refiner", ("timm-unet", {"decoder_features": 16})),
        # the same component keeps the recipe's options, merged with the user's
        ("refiner.options.blocks=2", "refiner", ("simgan-resnet", {"features": 32, "blocks": 2})),
        ("refiner.name='simgan-resnet'", "refiner", ("simgan-resnet", {"features": 32})),
    ],
)
def test_switching_a_component_drops_the_recipes_options_for_the_one_it_replaces(override, section, expected) -> None:
    """``--set refiner.name=timm-unet`` on a recipe that sizes its ResNet refiner must not hand ``features`` to a U-Net."""
    component = getattr(resolve_config(COMPONENTS, overrides=[override]), section)
    assert (component.name, component.options) == expected


def test_a_value_where_a_section_belongs_is_not_silently_dropped() -> None:
    # --set schedule=3 followed by --steps 2 (which the CLI adds as schedule.steps=2)
    with pytest.raises(ConfigError, match=r"'schedule' is a section of settings, not a value \(got 3\); .*--set schedule.KEY=VALUE"):
        resolve_config(RECIPE, overrides=["schedule=3", "schedule.steps=2"])
    with pytest.raises(ConfigError, match=r"'schedule': Input should be a valid dictionary .*\(got 3\)"):
        resolve_config(RECIPE, overrides=["schedule=3"])


def test_config_file_errors_name_the_file(tmp_path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[optim]\nmomentum = 1.5\n")
    with pytest.raises(ConfigError, match=r"recipe 'layers' with config file .*settings.toml: 'optim.momentum'"):
        resolve_config(RECIPE, config_file=path)
    path.write_bytes("seed = 1 # caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"settings.toml is not UTF-8 text .*save it as UTF-8"):
        resolve_config(RECIPE, config_file=path)
