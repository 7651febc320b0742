"""The Python API behind every CLI command: resolve a recipe into a config, then train."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from refinekit.config import (
    TrainConfig,
    build_config,
    deep_merge,
    load_toml,
    parse_set,
)
from refinekit.data.cache import load_dataset_cached
from refinekit.data.folder_lock import lock_folder
from refinekit.data.heldout import training_rows
from refinekit.data.loading import detect_dataset
from refinekit.errors import CheckpointError, ConfigError
from refinekit.plugins.recipe import Recipe
from refinekit.plugins.registry import get_recipe
from refinekit.runtime import distributed
from refinekit.runtime.precision import resolve_device
from refinekit.training.loop import CHECKPOINT_NAME, StepReport, Trainer, TrainResult

# Config sections that name a loader or component and carry that choice's options.
NAMED_SECTIONS = ("synthetic", "real", "refiner", "discriminator", "regularizer")
# Keys that say which data a run trains on: --resume compares them even where the recipe, not the request, set them,
# so that a run folder is never resumed as another recipe's. A component the request leaves to the recipe keeps the
# checkpoint's (its weights fit only that one), so a run still resumes after a newer recipe chose another network.
IDENTITY_KEYS = frozenset({"synthetic.name", "real.name", "image.channels", "image.height", "image.width"})
# Keys that may differ between a checkpoint's config and a resumed run's.
RESUMABLE_KEYS = frozenset({"schedule.steps", "log_every", "sample_every", "checkpoint_every", "on_nonfinite", "device"})


def resolve_config(
    recipe: str | Recipe,
    *,
    schedule: str | None = None,
    config_file: str | Path | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    synthetic: str | None = None,
    real: str | None = None,
) -> TrainConfig:
    """Merge, in order: defaults < recipe < schedule < config file < overrides < dataset paths.

    Args:
        recipe: a registered recipe name or a :class:`Recipe`.
        schedule: one of the recipe's named schedules (e.g. ``paper``).
        config_file: a TOML file with any config keys.
        overrides: ``key=value`` strings (as ``--set``) or a nested dict.
        synthetic: a path; its format is detected from the recipe's ``path_datasets``.
        real: the same for the real side.
    """
    recipe_obj = get_recipe(recipe) if isinstance(recipe, str) else recipe
    data: dict[str, Any] = json.loads(json.dumps(recipe_obj.config))
    chosen = schedule or recipe_obj.default_schedule
    if chosen is not None:
        if chosen not in recipe_obj.schedules:
            known = ", ".join(sorted(recipe_obj.schedules)) or "none"
            raise ConfigError(f"recipe '{recipe_obj.name}' has no schedule '{chosen}'; its schedules: {known}")
        data = deep_merge(data, recipe_obj.schedules[chosen])
    user: dict[str, Any] = load_toml(Path(config_file)) if config_file is not None else {}
    user = deep_merge(user, _overrides_dict(overrides))
    recipe_data, data = data, deep_merge(data, user)
    for section in NAMED_SECTIONS:
        if section in data:
            data[section] = _without_replaced_options(recipe_data.get(section), user.get(section), data[section])
    for side, path in (("synthetic", synthetic), ("real", real)):
        if path is not None:
            name = detect_dataset(path, recipe_obj.path_datasets)
            configured = data.get(side) if isinstance(data.get(side), dict) else {}
            # the limit stays, and so do options set for this loader (--set real.options...); another loader's go
            keep = ("limit", "options") if configured.get("name") == name else ("limit",)
            data[side] = {**{k: configured[k] for k in keep if k in configured}, "name": name, "path": str(path)}
    origin = f"configuration of recipe '{recipe_obj.name}'"
    if config_file is not None:
        origin += f" with config file {config_file}"
    config = build_config(data, origin=origin)
    paths = [f"{side}.{key}" for side, path in (("synthetic", synthetic), ("real", real)) if path for key in ("name", "path")]
    named_schedule = _flatten(recipe_obj.schedules[schedule]) if schedule is not None else {}
    config._requested_keys = frozenset([*_flatten(user), *paths, *named_schedule])
    return config


def _without_replaced_options(recipe_section: Any, user_section: Any, merged: Any) -> Any:
    """A named section less the recipe's options when the user switched it to another loader or component.

    A recipe's options are for its own choice (``eyes-simgan`` sets ``eyes-sim``'s
    ranges and a 32-channel ``simgan-resnet``); ``--set refiner.name=timm-unet`` would
    otherwise hand ``features`` to a refiner that rejects it. Options the user set stay.
    """
    if (
        not isinstance(recipe_section, dict)
        or not isinstance(merged, dict)
        or merged.get("name", recipe_section.get("name")) == recipe_section.get("name")
    ):
        return merged
    kept = {key: value for key, value in merged.items() if key != "options"}
    user_options = user_section.get("options") if isinstance(user_section, dict) else None
    return kept if user_options is None else {**kept, "options": user_options}


def _overrides_dict(overrides: Sequence[str] | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(overrides, Mapping):
        merged: dict[str, Any] = {}
        for key, value in overrides.items():
            nested: Any = value
            for part in reversed(str(key).split(".")):
                nested = {part: nested}
            merged = deep_merge(merged, nested)
        return merged
    merged = {}
    for expression in overrides:
        merged = deep_merge(merged, parse_set(expression))
    return merged


def _resumed_config(out_dir: Path, requested: TrainConfig) -> TrainConfig:
    """The checkpoint's config, with only the keys that may change on resume taken from ``requested``."""
    from refinekit.weights.files import CHECKPOINT_FORMAT, read_file

    _, metadata = read_file(out_dir / CHECKPOINT_NAME, CHECKPOINT_FORMAT)
    try:
        saved_data = json.loads(metadata["config"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(
            f"{out_dir / CHECKPOINT_NAME}: metadata 'config' is missing or not JSON ({exc}); it was not written by "
            "'refinekit run'. Start a new run in another --out folder."
        ) from None
    saved = build_config(saved_data, origin=f"config in {out_dir / CHECKPOINT_NAME}")
    saved_flat, requested_flat = _flatten(saved.model_dump(mode="json")), _flatten(requested.model_dump(mode="json"))
    asked = [key for key in saved_flat if _was_requested(key, requested._requested_keys)]
    changed = sorted(k for k in asked if saved_flat[k] != requested_flat.get(k) and k not in RESUMABLE_KEYS)
    if changed:
        raise ConfigError(
            f"--resume: {', '.join(changed)} differ from the checkpoint in {out_dir}. Resume with the same "
            f"settings, or start a new run in another --out folder. Only {', '.join(sorted(RESUMABLE_KEYS))} may change."
        )
    merged = saved.model_dump(mode="json")
    for key in RESUMABLE_KEYS.intersection(asked):
        *parents, leaf = key.split(".")
        target = merged
        for part in parents:
            target = target[part]
        target[leaf] = requested_flat[key]
    return build_config(merged)


def _was_requested(key: str, requested: frozenset[str] | None) -> bool:
    """Whether ``--resume`` compares ``key``: the request set it (itself, a section holding it, or the loader or
    component it configures), or it is one of the :data:`IDENTITY_KEYS`.

    A key the request left to the recipe keeps the checkpoint's value on resume, so a run that an older refinekit
    started (with other recipe defaults) still continues, and ``--resume`` alone keeps the run's ``--steps``.
    """
    if requested is None or key in IDENTITY_KEYS:
        return True
    section = key.split(".")[0]
    return any(key == set_key or key.startswith(f"{set_key}.") for set_key in requested) or (
        section in NAMED_SECTIONS and f"{section}.name" in requested
    )


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key not in ("options",):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def prepare(
    config: TrainConfig, out: str | Path, *, resume: bool = False, skip_bad: bool = False,
    callbacks: Sequence[Callable[[Trainer, StepReport], None]] = (),
    on_stage: Callable[[str], None] | None = None,
) -> Trainer:
    """Load the data and build a :class:`Trainer` (restored from the checkpoint when ``resume``).

    ``on_stage``, when given, hears each stage of the preparation (e.g. ``"preparing synthetic data: eyes-sim"``),
    so a display can show that a long render is under way.
    """
    out_dir = Path(out)
    checkpoint = out_dir / CHECKPOINT_NAME
    # One writer per run folder, before anything is read or written there. Under torchrun rank 0 writes
    # for all (the group is not joined yet, so RANK says who that is).
    existed = out_dir.exists()
    lock = lock_folder(out_dir, "--out") if os.environ.get("RANK", "0") in ("", "0") else None
    try:
        trainer = _prepare_locked(config, out_dir, checkpoint, resume, skip_bad, callbacks, on_stage)
    except BaseException:
        if lock is not None:
            lock.release()
            if not existed and not any(out_dir.iterdir()):
                out_dir.rmdir()  # a run that never started leaves no empty folder behind
        raise
    trainer.folder_lock = lock  # type: ignore[attr-defined]  # held while the trainer lives (see train())
    return trainer


def _prepare_locked(
    config: TrainConfig, out_dir: Path, checkpoint: Path, resume: bool, skip_bad: bool,
    callbacks: Sequence[Callable[[Trainer, StepReport], None]],
    on_stage: Callable[[str], None] | None = None,
) -> Trainer:
    say = on_stage or (lambda stage: None)
    if resume:
        if not checkpoint.exists():
            raise CheckpointError(f"--resume: there is no {CHECKPOINT_NAME} in {out_dir}; start without --resume")
        config = _resumed_config(out_dir, config)
    elif checkpoint.exists():
        raise ConfigError(
            f"{out_dir} already holds a run ({CHECKPOINT_NAME}); pass --resume to continue it, or choose another --out"
        )
    # Join torchrun's process group before loading, so rank 0 fills the dataset cache while the others wait.
    distributed.setup(resolve_device(config.device))
    say(f"preparing synthetic data: {config.synthetic.name} {config.synthetic.path or ''}".rstrip())
    synthetic = load_dataset_cached(config.synthetic, config.image, config.seed, skip_bad)
    say(f"preparing real data: {config.real.name} {config.real.path or ''}".rstrip())
    # the held-out real images are for evaluation alone: D never sees them (fraction < 1 always leaves some)
    real = load_dataset_cached(config.real, config.image, config.seed + 1, skip_bad)
    rows = training_rows(real, config.real_holdout)
    say("building the networks")
    trainer = Trainer(config, synthetic, real, out_dir, callbacks=callbacks, real_rows=rows)
    held_out = len(real) - len(rows)
    real_source = f"{real.source}, less {held_out} held out" if held_out else real.source
    trainer.sources = (synthetic.source, real_source)  # type: ignore[attr-defined]
    if resume:
        trainer.load_checkpoint(checkpoint)
    return trainer


def train(
    recipe: str | Recipe,
    out: str | Path = "runs/latest",
    *,
    schedule: str | None = None,
    config_file: str | Path | None = None,
    resume: bool = False,
    synthetic: str | None = None,
    real: str | None = None,
    skip_bad: bool = False,
    callbacks: Sequence[Callable[[Trainer, StepReport], None]] = (),
    **overrides: Any,
) -> TrainResult:
    """Train recipe ``recipe`` into ``out`` and return where its outputs are.

    Keyword overrides use dotted keys as in ``--set``, with ``__`` for the dots:
    ``train("eyes-simgan", schedule__steps=10, batch_size=16)``.

    Examples:
        >>> result = refinekit.train("eyes-simgan", "runs/eyes", schedule__steps=100)  # doctest: +SKIP
        >>> refiner = refinekit.load_refiner(result.refiner_path)  # doctest: +SKIP
    """
    config = resolve_config(
        recipe,
        schedule=schedule,
        config_file=config_file,
        overrides={k.replace("__", "."): v for k, v in overrides.items()},
        synthetic=synthetic,
        real=real,
    )
    trainer = prepare(config, out, resume=resume, skip_bad=skip_bad, callbacks=callbacks)
    try:
        return trainer.fit()
    finally:
        if trainer.folder_lock is not None:  # type: ignore[attr-defined]
            trainer.folder_lock.release()  # type: ignore[attr-defined]
