"""SimGAN's algorithm (Shrivastava et al., CVPR 2017) as plain functions, for anyone's training loop.

Each function computes one piece of the paper's Algorithm 1 from the networks,
a batch and, for the steps, an optimiser, and does nothing else: no seeding of
global RNGs, no process group, no signal handlers, no files. The randomness the
algorithm itself draws (DiffAugment, the history buffer's slots) comes from
``generator`` when one is given; the networks' own (dropout, say) stays theirs.
That lets a refiner train in a Lightning, Fabric or Accelerate loop next to a
task model::

    pretrain_refiner(refiner, regularizer, synthetic_batches, opt_r)          # step 1
    pretrain_discriminator(refiner, discriminator, paired_batches, opt_d)     # step 2
    for synthetic, real in batches:                                           # step 3
        refiner_step(refiner, regularizer, synthetic, opt_r, discriminator=discriminator)
        discriminator_step(refiner, discriminator, synthetic, real, opt_d, buffer=buffer)

:class:`~refinekit.training.loop.Trainer` runs its updates through
:func:`refiner_loss`, :func:`discriminator_batch`, :func:`discriminator_loss` and
:func:`update_average`, so there is one implementation of the algorithm. What
the Trainer adds around them is the run's business, not the algorithm's, and
stays in the loop: R's batch in chunks with summed gradients, gradient scaling,
DDP gradient sync, skipping non-finite steps, checkpoints and Ctrl-C.
:func:`refiner_step` and :func:`discriminator_step` are the plain versions.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

from refinekit.runtime.chunks import forward_in_chunks, frozen_batch_statistics
from refinekit.training import losses
from refinekit.training.augment import augment as augment_images
from refinekit.training.history_buffer import HistoryBuffer
from refinekit.training.lecam import LeCam
from refinekit.training.losses import REAL, REFINED, AdversarialLoss

__all__ = [
    "REAL",
    "REFINED",
    "HistoryBuffer",
    "LeCam",
    "refiner_loss",
    "discriminator_batch",
    "discriminator_loss",
    "refiner_step",
    "discriminator_step",
    "pretrain_refiner",
    "pretrain_discriminator",
    "update_average",
]

Network = Callable[[torch.Tensor], torch.Tensor]
Regularizer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Backward = Callable[[torch.Tensor], None]


def refiner_loss(
    refiner: Network,
    regularizer: Regularizer,
    synthetic: torch.Tensor,
    *,
    discriminator: nn.Module | None = None,
    reg_weight: float = 1.0,
    augment: Sequence[str] = (),
    loss: AdversarialLoss = "cross-entropy",
    generator: torch.Generator | None = None,
    refined: torch.Tensor | None = None,
    real: torch.Tensor | None = None,
    feature_matching: float = 0.0,
) -> dict[str, torch.Tensor]:
    """R's loss on a synthetic batch (paper eq. 4): ``reg_weight`` * self-regularisation, plus the adversarial term.

    Without ``discriminator`` this is the pre-training loss (Algorithm 1, step 1).
    D is held fixed: R's gradient flows through it, but D's parameters get none
    and its batch-norm running statistics do not move.

    Args:
        refiner: R; its output has the input's shape, in [-1, 1].
        regularizer: ``regularizer(refined, synthetic)``, a mean over images.
        synthetic: (B, C, H, W) float images in [-1, 1].
        discriminator: D, returning (B, 2, h, w) logits; None while pre-training.
        reg_weight: lambda, on the regulariser's mean (see :mod:`refinekit.training.losses`).
        augment: DiffAugment ops applied to what D sees (:mod:`refinekit.training.augment`).
        loss: the adversarial loss.
        generator: the source of the augmentations' randomness (default: torch's).
        refined: ``refiner(synthetic)`` when the caller has it already, say to add a task
            loss on the same forward pass (joint training); R is then not called.
        real: a batch of real images, needed by ``feature_matching`` only.
        feature_matching: weight of :func:`~refinekit.training.losses.feature_matching_loss`
            between D's features of the refined batch and of ``real`` (augmented alike); D must
            have a ``logits_and_features(x)`` method, as refinekit's discriminators do.

    Returns:
        ``refiner_reg``, ``refiner_adv`` (with a discriminator), ``refiner_fm`` (with
        ``feature_matching``) and ``refiner_loss``, their weighted sum, to backpropagate;
        each a mean over the batch.
    """
    if feature_matching and real is None:
        raise ValueError("feature_matching compares D's features of refined and real images: pass real=")
    if refined is None:
        refined = refiner(synthetic)
    reg = regularizer(refined.float(), synthetic)
    total = reg_weight * reg
    terms = {"refiner_reg": reg}
    if discriminator is not None:
        with _held_fixed(discriminator):
            shown = augment_images(refined, augment, generator)
            if feature_matching:
                logits, features = _logits_and_features(discriminator, shown)
                with torch.no_grad():
                    _, real_features = _logits_and_features(discriminator, augment_images(real, augment, generator))
                matching = losses.feature_matching_loss(features, real_features)
                total = total + feature_matching * matching
                terms["refiner_fm"] = matching
            else:
                logits = discriminator(shown)
        adversarial = losses.refiner_adversarial_loss(logits, loss)
        total = total + adversarial
        terms["refiner_adv"] = adversarial
    terms["refiner_loss"] = total
    return terms


def _logits_and_features(discriminator: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """D's logits and feature maps, from its ``logits_and_features`` method, which feature matching needs."""
    method = getattr(discriminator, "logits_and_features", None)
    if method is None:
        raise TypeError(
            f"feature matching needs D's features, and {type(discriminator).__name__} has no "
            "logits_and_features(x) method returning (logits, [feature maps]): add one, or turn feature matching off"
        )
    return method(images)


def discriminator_batch(
    refiner: nn.Module,
    synthetic: torch.Tensor,
    buffer: HistoryBuffer | None = None,
    generator: torch.Generator | None = None,
    *,
    micro_batch: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The refined images D is shown, and the current ones to push into ``buffer`` after D's update.

    Paper section 2.3: once the buffer holds images, D sees half a batch of
    current refined images and half drawn from the buffer, so only the first
    half of ``synthetic`` is refined. R runs without autograd and without moving
    its batch-norm running statistics; ``micro_batch`` images at a time if given.

    Returns:
        (``len(synthetic)`` refined images in float32, the first half of them refined now).
    """
    half = len(synthetic) // 2
    use_history = buffer is not None and len(buffer) > 0
    shown = synthetic[:half] if use_history else synthetic
    with torch.no_grad(), frozen_batch_statistics(refiner):
        refined = forward_in_chunks(refiner, shown, micro_batch or len(shown)).float()
    current = refined[:half]
    if use_history:
        return torch.cat([current, buffer.sample(len(synthetic) - half, generator)]), current
    return refined, current


def discriminator_loss(
    discriminator: Network,
    refined: torch.Tensor,
    real: torch.Tensor,
    *,
    augment: Sequence[str] = (),
    loss: AdversarialLoss = "cross-entropy",
    r1_weight: float = 0.0,
    real_label: float = 1.0,
    lecam: LeCam | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """D's loss (paper eq. 2): ``refined`` patches are class REFINED, ``real`` ones REAL.

    Both are augmented alike first. ``refined`` must not carry R's graph (take it
    from :func:`discriminator_batch`). With ``r1_weight``, the R1 penalty on real
    images (:func:`refinekit.training.losses.r1_penalty`) is added at half that weight.
    ``real_label`` below 1 smooths D's target for real patches only (one-sided);
    ``lecam`` adds its penalty (:class:`~refinekit.training.lecam.LeCam`) and moves its anchors.

    Returns:
        ``discriminator_loss`` to backpropagate, ``d_r1`` (with R1), ``d_lecam`` (with LeCam), and the shares
        of patches D gets right, ``d_acc_real`` and ``d_acc_refined``: tensors, so
        that reading them can wait until the backward is queued.
    """
    refined = augment_images(refined, augment, generator)
    real = augment_images(real, augment, generator)
    # Two D passes, not one over both: a D with batch norm must not mix real and refined statistics.
    logits_refined = discriminator(refined)
    if r1_weight:
        logits_real, penalty = losses.r1_penalty(discriminator, real)
    else:
        logits_real = discriminator(real)
    total = losses.discriminator_loss(logits_refined, logits_real, loss, real_label)
    extra = {}
    if lecam is not None:
        extra["d_lecam"] = lecam(losses.realness(logits_real), losses.realness(logits_refined))
        total = total + extra["d_lecam"]
    if r1_weight:
        extra["d_r1"] = penalty
        total = total + 0.5 * r1_weight * penalty
    return {
        "discriminator_loss": total,
        **extra,
        "d_acc_real": _patch_accuracy(logits_real, REAL),
        "d_acc_refined": _patch_accuracy(logits_refined, REFINED),
    }


def refiner_step(
    refiner: nn.Module,
    regularizer: Regularizer,
    synthetic: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    discriminator: nn.Module | None = None,
    reg_weight: float = 1.0,
    augment: Sequence[str] = (),
    loss: AdversarialLoss = "cross-entropy",
    generator: torch.Generator | None = None,
    backward: Backward | None = None,
    real: torch.Tensor | None = None,
    feature_matching: float = 0.0,
) -> dict[str, float]:
    """One R update: :func:`refiner_loss` (see there for the arguments), backward, ``optimizer.step()``.

    Only the parameters in ``optimizer`` move; D gets no gradients. ``backward``
    replaces ``loss.backward()``, e.g. ``fabric.backward`` or ``accelerator.backward``.
    """
    optimizer.zero_grad(set_to_none=True)
    terms = refiner_loss(
        refiner, regularizer, synthetic, discriminator=discriminator,
        reg_weight=reg_weight, augment=augment, loss=loss, generator=generator, real=real,
        feature_matching=feature_matching,
    )
    _backward(terms["refiner_loss"], backward)
    optimizer.step()
    return _floats(terms)


def discriminator_step(
    refiner: nn.Module,
    discriminator: nn.Module,
    synthetic: torch.Tensor,
    real: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    buffer: HistoryBuffer | None = None,
    augment: Sequence[str] = (),
    loss: AdversarialLoss = "cross-entropy",
    r1_weight: float = 0.0,
    real_label: float = 1.0,
    lecam: LeCam | None = None,
    generator: torch.Generator | None = None,
    backward: Backward | None = None,
) -> dict[str, float]:
    """One D update on refined ``synthetic`` (half from ``buffer`` once it holds images) against ``real``.

    R does not change and gets no gradients. The newly refined half goes into
    ``buffer`` afterwards. ``generator`` drives the buffer and the augmentations;
    ``backward`` replaces ``loss.backward()``.
    """
    refined, current = discriminator_batch(refiner, synthetic, buffer, generator)
    optimizer.zero_grad(set_to_none=True)
    terms = discriminator_loss(
        discriminator, refined, real, augment=augment, loss=loss, r1_weight=r1_weight, real_label=real_label,
        lecam=lecam, generator=generator,
    )
    _backward(terms["discriminator_loss"], backward)
    optimizer.step()
    if buffer is not None:
        buffer.push(current, generator)
    return _floats(terms)


def pretrain_refiner(
    refiner: nn.Module,
    regularizer: Regularizer,
    batches: Iterable[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    reg_weight: float = 1.0,
    backward: Backward | None = None,
) -> dict[str, float]:
    """Algorithm 1, step 1: one R update per synthetic batch on self-regularisation alone; the last metrics.

    R starts from the identity-like map the regulariser pulls it to, so the
    adversarial phase begins from images that still carry their annotations.
    """
    metrics: dict[str, float] = {}
    for synthetic in batches:
        metrics = refiner_step(refiner, regularizer, synthetic, optimizer, reg_weight=reg_weight, backward=backward)
    return metrics


def pretrain_discriminator(
    refiner: nn.Module,
    discriminator: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    *,
    buffer: HistoryBuffer | None = None,
    augment: Sequence[str] = (),
    loss: AdversarialLoss = "cross-entropy",
    r1_weight: float = 0.0,
    real_label: float = 1.0,
    lecam: LeCam | None = None,
    generator: torch.Generator | None = None,
    backward: Backward | None = None,
) -> dict[str, float]:
    """Algorithm 1, step 2: one D update per (synthetic, real) batch against the pre-trained R; the last metrics.

    A D that already tells refined from real gives R a useful gradient from the
    first adversarial step.
    """
    metrics: dict[str, float] = {}
    for synthetic, real in batches:
        metrics = discriminator_step(
            refiner, discriminator, synthetic, real, optimizer, buffer=buffer, augment=augment,
            loss=loss, r1_weight=r1_weight, real_label=real_label, lecam=lecam, generator=generator,
            backward=backward,
        )
    return metrics


@torch.no_grad()
def update_average(average: nn.Module, model: nn.Module, decay: float) -> None:
    """Move ``average``'s weights toward ``model``'s: ``decay * average + (1 - decay) * model``.

    An exponential moving average of R's weights (``decay`` 0.999, say) smooths
    the adversarial game's oscillation out of the refiner one exports. Integer
    buffers are copied; ``decay=0`` copies everything.
    """
    weight = 1 - decay
    for averaged, current in zip(average.state_dict().values(), model.state_dict().values()):
        if averaged.is_floating_point():
            averaged.lerp_(current, weight)
        else:
            averaged.copy_(current)


@contextmanager
def _held_fixed(module: nn.Module) -> Iterator[None]:
    """Run ``module`` so that autograd passes through it but records nothing for its parameters."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    for param in trainable:
        param.requires_grad_(False)
    try:
        with frozen_batch_statistics(module):
            yield
    finally:
        for param in trainable:
            param.requires_grad_(True)


def _patch_accuracy(logits: torch.Tensor, target: int) -> torch.Tensor:
    """Share of patches D assigns to ``target``, left on the device (read with the other metrics)."""
    return (logits.argmax(dim=1) == target).float().mean()


def _backward(loss: torch.Tensor, backward: Backward | None) -> None:
    if backward is None:
        loss.backward()
    else:
        backward(loss)


def _floats(terms: dict[str, torch.Tensor]) -> dict[str, float]:
    """All terms read in one transfer."""
    return dict(zip(terms, torch.stack([t.detach().float().reshape(()) for t in terms.values()]).tolist()))
