"""Turn refiner weights saved by other tools (``.pt``, ``.pth``, plain safetensors) into an exported refiner.

refinekit never unpickles: a pickle can run any code when it is loaded. This is
the one place that reads PyTorch's pickle-based files, and it does so only with
``torch.load(weights_only=True)``, whose restricted unpickler accepts tensors and
plain containers and refuses everything else (such as an object whose
``__reduce__`` calls ``os.system``). The weights are then checked against the
named refiner, so a file that loads here also loads with ``load_refiner``.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from refinekit.errors import CheckpointError, ConfigError
from refinekit.plugins.registry import create_refiner
from refinekit.weights.files import export_refiner, load_state_file

# Prefixes that wrappers add to every key: DistributedDataParallel and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def convert_refiner(
    source: str | Path,
    target: str | Path,
    refiner: str,
    *,
    options: dict[str, Any] | None = None,
    channels: int = 1,
    image_size: tuple[int, int] = (35, 55),
) -> Path:
    """Write ``target`` (an exported refiner) from the state dict in ``source``.

    Args:
        source: a ``.pt``/``.pth``/``.pkl`` file holding a state dict, or a dict with a
            ``state_dict`` entry; or a plain ``.safetensors`` state dict.
        target: the ``.safetensors`` file to write.
        refiner: the registered refiner the weights belong to (``refinekit plugins``).
        options: the refiner factory's keyword options (e.g. ``{"features": 32}``).
        channels: image channels the refiner was built for.
        image_size: (H, W) the refiner was trained on, stored for ``refinekit refine``.

    Returns:
        The path written.
    """
    source, target = Path(source), Path(target)
    options = dict(options or {})
    if target.suffix != ".safetensors":
        raise ConfigError(f"{target}: the output must be a .safetensors file, e.g. {target.with_suffix('.safetensors')}")
    if source.resolve() == target.resolve():
        raise ConfigError(f"{source}: the input and output are the same file; choose another output path")
    state = _read_state_dict(source)
    module = create_refiner(refiner, channels=channels, **options)
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [k for k in sorted(set(state) & set(expected)) if tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong_shape:
        raise CheckpointError(
            f"{source}: the weights do not fit refiner '{refiner}' with channels={channels} and options {options}: "
            + "; ".join(_describe_mismatch(missing, unexpected, wrong_shape, state, expected))
            + ". Pass the --refiner, --channels and --set options the weights were trained with."
        )
    module.load_state_dict(state)
    export_refiner(module, target, refiner, options, channels, image_size)
    return target


def _read_state_dict(source: Path) -> dict[str, torch.Tensor]:
    if not source.is_file():
        raise CheckpointError(f"{source} does not exist or is not a file; check the path")
    if source.suffix == ".safetensors":
        return _unwrap(load_state_file(source), source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols, irrelevant to the user
            loaded = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # Garbage and pickles of arbitrary objects look alike to the restricted unpickler; say both.
        raise CheckpointError(
            f"{source}: refused: it is not a torch.save file of only tensors and plain containers "
            f"({_refusal_reason(exc)}), and loading anything else could run arbitrary code. If it comes from "
            "a source you trust, save only the weights, torch.save(model.state_dict(), path), and convert that file."
        ) from None
    except Exception as exc:  # torch raises KeyError, EOFError, RuntimeError... for damaged files
        raise CheckpointError(
            f"{source}: not a readable PyTorch weights file ({type(exc).__name__}: {exc}); it may be truncated "
            "or not a torch.save file"
        ) from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise CheckpointError(
            f"{source}: holds a {type(loaded).__name__}, not a state dict; expected a dict of tensors "
            "or a dict with a 'state_dict' entry"
        )
    return _unwrap(loaded, source)


def _unwrap(state: dict[Any, Any], source: Path) -> dict[str, torch.Tensor]:
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{source}: entry {key!r} of the state dict is a {type(value).__name__}, not a tensor; "
                "expected a dict of tensors or a dict with a 'state_dict' entry"
            )
    for prefix in _WRAPPER_PREFIXES:
        if state and all(str(k).startswith(prefix) for k in state):
            state = {str(k)[len(prefix) :]: v for k, v in state.items()}
    return {str(k): v for k, v in state.items()}


def _refusal_reason(exc: pickle.UnpicklingError) -> str:
    """The line of torch's long refusal message that says what was refused."""
    for line in str(exc).splitlines():
        line = line.strip()
        if line.startswith(("Trying to load", "Unsupported")):
            return line.rstrip(".")
    return "see torch.load's weights_only documentation"


def _describe_mismatch(
    missing: list[str],
    unexpected: list[str],
    wrong_shape: list[str],
    state: dict[str, torch.Tensor],
    expected: dict[str, torch.Tensor],
) -> list[str]:
    def some(keys: list[str]) -> str:
        return ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")

    parts = []
    if missing:
        parts.append(f"missing {some(missing)}")
    if unexpected:
        parts.append(f"unexpected {some(unexpected)}")
    for key in wrong_shape[:3]:
        parts.append(f"'{key}' has shape {tuple(state[key].shape)}, the refiner expects {tuple(expected[key].shape)}")
    return parts
