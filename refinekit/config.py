"""The run configuration: typed, validated, documented field by field.

pydantic does the validation because its errors already name the failing field
and value, it refuses unknown keys, and the field descriptions double as the
generated configuration reference in the docs (one source of truth).
"""

from __future__ import annotations

import datetime
import difflib
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from refinekit.errors import ConfigError

MAX_SIDE = 4096
"""Most pixels per image side (as for exported refiners, :data:`refinekit.weights.files.MAX_SIDE`)."""
MAX_BATCH = 65536
MAX_BUFFER = 10_000_000
MAX_BUFFER_BYTES = 16 * 2**30
MAX_WIDTH = 4096
_WIDTH_OPTIONS = ("features", "decoder_features", "blocks")
"""Component options that are layer widths or counts, whatever the component: whole numbers in 1..MAX_WIDTH."""

_Beta = Annotated[float, Field(ge=0, lt=1)]


def check_widths(key: str, options: dict[str, Any]) -> None:
    for name in _WIDTH_OPTIONS:
        if name in options:
            value = options[name]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WIDTH:
                raise ValueError(
                    f"'{key}.options.{name}' must be a whole number in 1..{MAX_WIDTH} (got {value!r})"
                )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ComponentConfig(_Strict):
    """A registered component by name plus the keyword options of its factory."""

    name: str = Field(description="Registered name, see `refinekit plugins`.")
    options: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the factory.")


class DatasetConfig(_Strict):
    """Where one side of the training data comes from."""

    name: str = Field(description="Registered dataset loader, e.g. `image-folder`.")
    path: str | None = Field(default=None, description="File or folder to read; None for generated data.")
    limit: int | None = Field(default=None, gt=0, description="Use at most this many images.")
    options: dict[str, Any] = Field(default_factory=dict, description="Loader-specific options.")


class ImageConfig(_Strict):
    """The working image shape; every loader delivers images of this shape."""

    channels: Literal[1, 3] = Field(default=1, description="1 for grayscale, 3 for RGB.")
    height: int = Field(default=35, ge=8, le=MAX_SIDE, description="Image height in pixels (paper: 35).")
    width: int = Field(default=55, ge=8, le=MAX_SIDE, description="Image width in pixels (paper: 55).")


class ScheduleConfig(_Strict):
    """The paper's Algorithm 1: pre-train R, pre-train D, then k_g / k_d rounds."""

    refiner_pretrain_steps: int = Field(default=200, ge=0, description="R steps on self-regularisation alone.")
    discriminator_pretrain_steps: int = Field(default=50, ge=0, description="D steps before adversarial rounds.")
    steps: int = Field(default=500, ge=0, description="Adversarial rounds; each is k_g R steps then k_d D steps.")
    k_g: int = Field(default=2, ge=1, description="Refiner updates per round (paper: 2 for eyes).")
    k_d: int = Field(default=1, ge=1, description="Discriminator updates per round (paper: 1).")


class OptimConfig(_Strict):
    """Optimiser settings shared by R and D (learning rates are per network)."""

    name: Literal["sgd", "adam"] = Field(default="sgd", description="SGD as in the paper, or Adam.")
    lr_refiner: float = Field(default=0.001, gt=0, description="Refiner learning rate (paper: 0.001).")
    lr_discriminator: float = Field(default=0.001, gt=0, description="Discriminator learning rate.")
    momentum: float = Field(default=0.0, ge=0, lt=1, description="SGD momentum.")
    betas: tuple[_Beta, _Beta] = Field(default=(0.5, 0.999), description="Adam betas, each in [0, 1).")
    decay_from: float = Field(
        default=1.0, ge=0, le=1,
        description="Share of the adversarial rounds after which both learning rates fall linearly towards zero "
        "at the last round (1 keeps them constant; CycleGAN's is 0.5).",
    )


class AdversarialConfig(_Strict):
    """How D is trained and what R's adversarial term is: the stabilisers for small real sets."""

    loss: Literal["cross-entropy", "least-squares", "hinge"] = Field(
        default="cross-entropy", description="Adversarial loss on every patch (paper: cross-entropy)."
    )
    augment: list[Literal["brightness", "contrast", "translation", "cutout", "flip"]] = Field(
        default_factory=list,
        description="DiffAugment ops applied, differentiably, to every image D sees, real and refined alike.",
    )
    r1_weight: float = Field(
        default=0.0, ge=0, description="gamma of the R1 gradient penalty on real images (0 disables it)."
    )
    lecam_weight: float = Field(
        default=0.0, ge=0,
        description="Weight of the LeCam regulariser (Tseng et al. 2021): D's realness on real patches is pulled "
        "towards its running mean on refined ones and the other way round, against D's drift on small real sets "
        "(0 disables it). Its authors use 0.3 beside DiffAugment with the hinge loss; with eyes-simgan's "
        "cross-entropy, 0.03 already flattens D and leaves the eyes unrefined (docs/quality.md).",
    )
    feature_matching: float = Field(
        default=0.0, ge=0,
        description="Weight of feature matching in R's loss (Salimans et al. 2016): the squared gap between the "
        "batch means of D's features on refined and on real images, beside the adversarial term (0 disables it). "
        "Each R step then also draws a real batch; D needs a logits_and_features(x) method, as refinekit's have.",
    )
    real_label: float = Field(
        default=1.0, gt=0.5, le=1,
        description="D's target for real patches: below 1 is one-sided label smoothing (Salimans et al. 2016; "
        "0.9 is usual). Cross-entropy and least-squares only: the hinge loss has no target.",
    )

    @model_validator(mode="after")
    def _hinge_has_no_target(self) -> "AdversarialConfig":
        if self.loss == "hinge" and self.real_label != 1.0:
            raise ValueError(
                f"real_label ({self.real_label}) smooths a target, and the hinge loss has none: "
                "set adversarial.real_label=1 or adversarial.loss='cross-entropy'"
            )
        return self


class HoldoutConfig(_Strict):
    """Real images kept away from training, so that evaluation measures generalisation, not memory."""

    fraction: float = Field(
        default=0.2, ge=0, lt=1, description="Share of the real set held out; D never sees these images."
    )
    seed: int = Field(default=0, description="Keys the image-content hash that picks the held-out images.")
    group_by: str | None = Field(
        default=None,
        description="Hold out whole groups of real images that share this annotation, e.g. 'person' for MPIIGaze's "
        "pXX folders: the held-out images then show people D never saw, not near twins of its own. Groups are "
        "taken until at least `fraction` of the images are held out; one group always stays for training.",
    )


class TrainConfig(_Strict):
    """Everything a run needs. A recipe fills in defaults; --config and --set override them."""

    seed: int = Field(default=0, description="Seeds every RNG: weights, batches, buffer, augmentation.")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto picks cuda when present.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="fp32", description="Autocast dtype; auto picks bf16 on CPUs/GPUs with native support."
    )
    channels_last: bool = Field(default=True, description="Use the NHWC memory layout (faster convolutions).")
    image: ImageConfig = Field(default_factory=ImageConfig)
    synthetic: DatasetConfig = Field(description="The synthetic (labelled) source.")
    real: DatasetConfig = Field(description="The real (unlabelled) target.")
    refiner: ComponentConfig = Field(default_factory=lambda: ComponentConfig(name="simgan-resnet"))
    discriminator: ComponentConfig = Field(default_factory=lambda: ComponentConfig(name="local-patch"))
    regularizer: ComponentConfig = Field(default_factory=lambda: ComponentConfig(name="l1"))
    reg_weight: float = Field(
        default=1.0,
        ge=0,
        description="lambda for the self-regularisation term, as a weight on the per-pixel *mean* L1 "
        "(see docs: converting from the paper's per-sum lambda).",
    )
    batch_size: int = Field(
        default=64, ge=2, le=MAX_BATCH, description="Images per step; D sees half current, half history."
    )
    buffer_size: int = Field(
        default=6400, ge=0, le=MAX_BUFFER, description="Image history buffer size B (0 disables it)."
    )
    adversarial: AdversarialConfig = Field(default_factory=AdversarialConfig)
    refiner_ema: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Decay of an exponential moving average of R's weights, used for samples and the exported "
        "refiner (0 disables it).",
    )
    real_holdout: HoldoutConfig = Field(default_factory=HoldoutConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    on_nonfinite: Literal["stop", "skip"] = Field(
        default="stop", description="On a NaN/Inf loss: stop (keep last checkpoint) or skip the step."
    )
    log_every: int = Field(default=10, ge=1, description="Steps between metrics.jsonl lines.")
    sample_every: int = Field(default=100, ge=1, description="Steps between sample grids.")
    checkpoint_every: int = Field(default=100, ge=1, description="Steps between checkpoints.")
    compile: bool = Field(default=False, description="Wrap the networks with torch.compile.")
    micro_batch: int | None = Field(
        default=None,
        ge=1,
        description="Most images (per process) the refiner runs at once in training; in R's update the chunks' "
        "gradients are summed, so the update is the same. Unset: on a CPU a power of two images of at most 32,768 pixels in all "
        "(16 of 35x55), which keeps the activations in cache; on a GPU the whole batch.",
    )
    # The dotted keys that a config file, --set or a dataset path set (resolve_config fills it in), so that --resume
    # tells a changed request from a recipe default that a newer version changed. None: every key counts as set.
    _requested_keys: frozenset[str] | None = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:
        """The same settings are the same config, whoever asked for which of them (``_requested_keys``)."""
        if not isinstance(other, TrainConfig):
            return NotImplemented
        return self.__dict__ == other.__dict__

    @model_validator(mode="before")
    @classmethod
    def _component_names_default(cls, data: Any) -> Any:
        # `--set refiner.options.features=32` alone must keep the default refiner, not lose its name.
        if isinstance(data, dict):
            for key in ("refiner", "discriminator", "regularizer"):
                if isinstance(data.get(key), dict) and "name" not in data[key]:
                    default = cls.model_fields[key].get_default(call_default_factory=True)
                    data = {**data, key: {"name": default.name, **data[key]}}
        return data

    @model_validator(mode="after")
    def _buffer_holds_half_batch(self) -> "TrainConfig":
        if 0 < self.buffer_size < self.batch_size // 2:
            raise ValueError(
                f"buffer_size ({self.buffer_size}) must be 0 or at least batch_size/2 ({self.batch_size // 2})"
            )
        image = self.image
        buffer_bytes = self.buffer_size * image.channels * image.height * image.width  # uint8 on the device
        if buffer_bytes > MAX_BUFFER_BYTES:
            raise ValueError(
                f"buffer_size ({self.buffer_size}) images of {image.channels}x{image.height}x{image.width} would take "
                f"{buffer_bytes / 2**30:.1f} GiB; the most is {MAX_BUFFER_BYTES / 2**30:.0f} GiB. Lower buffer_size "
                "(the paper's is 100 batches)"
            )
        for key in ("refiner", "discriminator", "regularizer"):
            check_widths(key, getattr(self, key).options)
        return self


def deep_merge(base: dict[str, Any], override: dict[str, Any], _path: str = "") -> dict[str, Any]:
    """A copy of ``base`` with ``override`` merged in, recursing into dicts."""
    merged = dict(base)
    for key, value in override.items():
        where = f"{_path}{key}"
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value, where + ".")
        elif isinstance(value, dict) and merged.get(key) is not None:
            # e.g. --set schedule=3 then --steps 2: the 3 would vanish without a word
            raise ConfigError(
                f"'{where}' is a section of settings, not a value (got {merged[key]!r}); "
                f"set its keys instead, e.g. --set {where}.KEY=VALUE"
            )
        else:
            merged[key] = value
    return merged


def parse_set(expression: str) -> dict[str, Any]:
    """``"schedule.k_g=3"`` -> ``{"schedule": {"k_g": 3}}``. Values are read as TOML, else as text."""
    key, sep, raw = expression.partition("=")
    key = key.strip()
    if not sep or not key or any(not part.isidentifier() for part in key.split(".")):
        raise ConfigError(
            f"--set {expression!r} does not parse: expected KEY=VALUE with a dotted key, e.g. --set schedule.k_g=2"
        )
    value = _parse_value(raw.strip())
    for part in reversed(key.split(".")):
        value = {part: value}
    return value  # type: ignore[return-value]


def _parse_value(raw: str) -> Any:
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
    # TOML reads 2024-01-01 as a date, but no config key holds one: it is a name or a path.
    return raw if isinstance(value, (datetime.date, datetime.time)) else value


def load_toml(path: Path) -> dict[str, Any]:
    """A TOML config file as a dict, with errors that name the file."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text ({exc}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None


def build_config(data: dict[str, Any], origin: str = "configuration") -> TrainConfig:
    """Validate ``data`` into a :class:`TrainConfig`, turning pydantic errors into one readable message."""
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            if err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(where, [row[0] for row in iter_keys()], n=1)
                problems.append(f"unknown key '{where}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
            elif not err["loc"]:  # a check across keys: its message names them; the input is the whole config
                problems.append(err["msg"].removeprefix("Value error, "))
            else:
                problems.append(f"'{where}': {err['msg']} (got {err.get('input')!r})")
        raise ConfigError(
            f"invalid {origin}: " + "; ".join(problems) + ". See 'refinekit recipes --keys' for every key."
        ) from None


def config_to_json(config: TrainConfig) -> str:
    return json.dumps(config.model_dump(mode="json"), indent=2, sort_keys=True)


def iter_keys(
    model: type[BaseModel] = TrainConfig, prefix: str = "", defaults: BaseModel | None = None
) -> list[tuple[str, str, str, str]]:
    """(dotted key, type, default, description) for every leaf key: the generated config reference.

    A nested section's defaults come from the parent's default instance (``refiner.name``
    defaults to ``'simgan-resnet'`` although ``ComponentConfig.name`` has no default).
    """
    rows = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        key = f"{prefix}{name}"
        required = defaults is None and info.is_required()
        value = getattr(defaults, name) if defaults is not None else None
        if defaults is None and not required:
            value = info.get_default(call_default_factory=True)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.extend(iter_keys(annotation, key + ".", value))
            continue
        rows.append((key, _type_name(annotation, info.metadata), "required" if required else repr(value), info.description or ""))
    return rows


_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


def _type_name(annotation: Any, metadata: list[Any]) -> str:
    """``'auto' | 'cpu'`` for a Literal, ``int, >= 0`` for a bounded int, else the annotation as written."""
    if get_origin(annotation) is Literal:
        text = " | ".join(repr(v) for v in get_args(annotation))
    elif get_origin(annotation) is tuple:  # tuple[Annotated[float, bounds], ...]: the bounds are in the description
        text = "tuple[" + ", ".join(getattr(get_args(a)[0] if get_origin(a) is Annotated else a, "__name__", str(a))
                                    for a in get_args(annotation)) + "]"
    elif get_origin(annotation) is None and hasattr(annotation, "__name__"):
        text = annotation.__name__
    else:
        text = str(annotation).replace("typing.", "")
    bounds = [f"{symbol} {getattr(m, attr)}" for m in metadata for attr, symbol in _BOUNDS if hasattr(m, attr)]
    return ", ".join([text, *bounds])
