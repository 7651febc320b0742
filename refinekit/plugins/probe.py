"""The run-time probe: check a run's plugin components on 2 images before the first training step.

A component that breaks its contract otherwise fails late and raw: a refiner
that returns 1 channel for 3-channel images trains through all of R's
pre-training (the L1 loss broadcasts) and dies at D's first step with a torch
shape error naming no plugin. The probe runs each component once, in eval
mode, without gradients and with the RNG state restored, so it changes
nothing a run computes, and raises a :class:`PluginError` naming the
component, its plugin and distribution, and what was expected.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> class OneChannel(nn.Module):
    ...     def forward(self, x):
    ...         return x[:, :1]
    >>> probe_components(OneChannel(), None, None, torch.zeros(2, 3, 8, 8), names={"refiner": "one"})
    Traceback (most recent call last):
    ...
    refinekit.errors.PluginError: refiner 'one'...returned shape (2, 1, 8, 8) for images of shape (2, 3, 8, 8); ...
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from refinekit.errors import PluginError

RANGE_SLACK = 1e-3
"""How far outside [-1, 1] refined pixels may stray (rounding of a tanh in low precision)."""


def probe_components(
    refiner: nn.Module,
    discriminator: nn.Module | None,
    regularizer: nn.Module | None,
    images: torch.Tensor,
    names: dict[str, str],
) -> None:
    """Run each component once on ``images`` (B, C, H, W) in [-1, 1] and check its output's contract.

    Args:
        refiner: must return a float tensor of the input's shape, finite, in [-1, 1].
        discriminator: must return finite logits of shape (B, 2, h, w).
        regularizer: ``regularizer(refined, images)`` must return a finite scalar.
        images: a couple of synthetic images on the training device.
        names: the registered name of each component by kind, for the messages.
    """
    modules = [m for m in (refiner, discriminator, regularizer) if m is not None]
    modes = [(m, m.training) for module in modules for m in module.modules()]
    devices = [images.device] if images.device.type == "cuda" else []
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            for module in modules:
                module.eval()  # batch norm must not learn from the probe
            refined = _run("refiner", names, refiner, images)
            _check_refined(refined, images, names)
            if discriminator is not None:
                logits = _run("discriminator", names, discriminator, refined)
                _check_logits(logits, images, names)
            if regularizer is not None:
                loss = _run("regularizer", names, regularizer, refined.float(), images)
                _check_scalar(loss, names)
    finally:
        for module, training in modes:
            module.training = training


def _run(kind: str, names: dict[str, str], module: nn.Module, *args: torch.Tensor) -> Any:
    try:
        return module(*args)
    except (KeyboardInterrupt, PluginError):
        raise
    except Exception as exc:
        shapes = " and ".join(str(tuple(a.shape)) for a in args)
        raise _error(kind, names, f"raised {type(exc).__name__}: {exc} when called on input of shape {shapes}") from exc


def _check_refined(refined: Any, images: torch.Tensor, names: dict[str, str]) -> None:
    if not isinstance(refined, torch.Tensor):
        raise _error("refiner", names, f"returned {type(refined).__name__}, not a tensor")
    if refined.shape != images.shape:
        raise _error(
            "refiner", names,
            f"returned shape {tuple(refined.shape)} for images of shape {tuple(images.shape)}; a refiner keeps the "
            "shape (batch, channels, height, width) of its input",
        )
    if not refined.is_floating_point():
        raise _error("refiner", names, f"returned {refined.dtype}; a refiner returns float images in [-1, 1]")
    if not torch.isfinite(refined).all():
        raise _error("refiner", names, "returned NaN or infinite pixels")
    low, high = (float(v) for v in torch.aminmax(refined.float()))
    if low < -1 - RANGE_SLACK or high > 1 + RANGE_SLACK:
        raise _error(
            "refiner", names,
            f"returned pixels in [{low:.4g}, {high:.4g}]; refined images must be in [-1, 1] like its input "
            "(end the network with tanh)",
        )


def _check_logits(logits: Any, images: torch.Tensor, names: dict[str, str]) -> None:
    if not isinstance(logits, torch.Tensor):
        raise _error("discriminator", names, f"returned {type(logits).__name__}, not a tensor")
    if logits.dim() != 4 or logits.shape[0] != images.shape[0] or logits.shape[1] != 2:
        raise _error(
            "discriminator", names,
            f"returned shape {tuple(logits.shape)} for {images.shape[0]} images; a discriminator returns logits of "
            f"shape ({images.shape[0]}, 2, h, w): refined/real per patch",
        )
    if not torch.isfinite(logits).all():
        raise _error("discriminator", names, "returned NaN or infinite logits")


def _check_scalar(loss: Any, names: dict[str, str]) -> None:
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise _error(
            "regularizer", names,
            f"returned {shape}; a regulariser returns a scalar loss (e.g. a mean over pixels and images)",
        )
    if not torch.isfinite(loss).all():
        raise _error("regularizer", names, f"returned a non-finite loss ({float(loss)})")


def _error(kind: str, names: dict[str, str], problem: str) -> PluginError:
    name = names.get(kind, "?")
    origin = ""
    try:
        from refinekit.plugins.registry import get_registry

        registry = get_registry()
        entry = registry.entries[kind].get(name) or registry.get(kind, name)
        origin = f" of plugin '{entry.plugin}' ({registry._origin(entry.plugin)})"
    except Exception:  # a component built outside the registry: name it as configured
        pass
    return PluginError(
        f"{kind} '{name}'{origin} {problem}. Checked on 2 images before training started, so nothing was trained. "
        f"Fix the {kind}, or choose another with --set {kind}.name=NAME"
    )
