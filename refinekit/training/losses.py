"""SimGAN's losses, with their normalisation stated.

Adversarial (paper eq. 2-3, local version section 2.2): by default the two-class
cross-entropy of every patch logit, *averaged* over patches and batch. Averaging
keeps the loss's scale independent of image size (more patches) and batch size.
The paper sums over patches, so with the mean-L1 self-regularisation of
:mod:`refinekit.components.regularizers`, ``reg_weight = lambda_paper * C*H*W / P``
for P patches gives the paper's balance.

Besides the paper's cross-entropy, the least-squares (Mao et al. 2017) and hinge
(Lim and Ye 2017; Miyato et al. 2018) losses are available. Both act on each
patch's *realness* ``d = logit_real - logit_refined``, of which the two-class
cross-entropy is ``softplus(-d)`` for real and ``softplus(d)`` for refined patches.
"""

from __future__ import annotations

from typing import Literal, Sequence, get_args

import torch
import torch.nn.functional as F
from torch import nn

REFINED, REAL = 0, 1
"""The discriminator's two classes: channel 0 of its (B, 2, h, w) logits is refined, channel 1 real."""

AdversarialLoss = Literal["cross-entropy", "least-squares", "hinge"]
ADVERSARIAL_LOSSES: tuple[str, ...] = get_args(AdversarialLoss)


def patch_cross_entropy(logits: torch.Tensor, target: int, confidence: float = 1.0) -> torch.Tensor:
    """Mean cross-entropy of (B, 2, h, w) logits against one class for every patch.

    ``F.cross_entropy`` on the (B, 2, h, w) tensor keeps channel pairing right;
    a ``view(-1, 2)`` on NCHW logits, as some ports do, pairs neighbouring
    pixels of the same channel instead of the two channels of one patch.
    ``confidence`` below 1 is the probability the target class is given, the
    rest going to the other class (label smoothing over two classes).
    """
    _check_logits(logits)
    labels = torch.full((logits.shape[0], *logits.shape[2:]), target, dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.float(), labels, label_smoothing=2 * (1 - confidence))


def realness(logits: torch.Tensor) -> torch.Tensor:
    """(B, h, w): how much D believes each patch is real, ``logit_real - logit_refined``."""
    _check_logits(logits)
    return (logits[:, REAL] - logits[:, REFINED]).float()


def refiner_adversarial_loss(logits_refined: torch.Tensor, kind: AdversarialLoss = "cross-entropy") -> torch.Tensor:
    """The refiner wants D to call its output real (paper eq. 3, l_real)."""
    if kind == "cross-entropy":
        return patch_cross_entropy(logits_refined, REAL)
    d = realness(logits_refined)
    if kind == "least-squares":
        return 0.5 * (d - 1).square().mean()
    if kind == "hinge":
        return -d.mean()
    raise ValueError(f"unknown adversarial loss {kind!r}; choose from {ADVERSARIAL_LOSSES}")


def discriminator_loss(
    logits_refined: torch.Tensor,
    logits_real: torch.Tensor,
    kind: AdversarialLoss = "cross-entropy",
    real_label: float = 1.0,
) -> torch.Tensor:
    """D's loss (paper eq. 2): refined patches are class REFINED, real patches are class REAL.

    ``real_label`` below 1 is one-sided label smoothing (Salimans et al. 2016): D's
    target for real patches only, so that D stops short of certainty on them
    without learning to call refined patches a little real. Hinge has no target.
    """
    if kind == "hinge" and real_label != 1.0:
        raise ValueError("the hinge loss has no target to smooth; use real_label=1 or another loss")
    if kind == "cross-entropy":
        return 0.5 * (
            patch_cross_entropy(logits_refined, REFINED) + patch_cross_entropy(logits_real, REAL, real_label)
        )
    fake, real = realness(logits_refined), realness(logits_real)
    if kind == "least-squares":
        return 0.5 * ((real - real_label).square().mean() + fake.square().mean())
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    raise ValueError(f"unknown adversarial loss {kind!r}; choose from {ADVERSARIAL_LOSSES}")


def feature_matching_loss(refined: Sequence[torch.Tensor], real: Sequence[torch.Tensor]) -> torch.Tensor:
    """The squared gap between the batch means of D's features on refined and on real images (Salimans et al. 2016).

    R's adversarial term judges each image on its own; this one asks the refined
    batch to have, on average, what D sees in real ones, feature by feature and
    position by position: a target that does not move when D overfits a few
    thousand real images. One mean of squares per feature map (a multi-scale D
    has one per scale), averaged over the maps.
    """
    if len(refined) != len(real) or not refined:
        raise ValueError(
            f"feature matching needs the same D feature maps for both sets, got {len(refined)} and {len(real)}"
        )
    gaps = [(fake.float().mean(0) - true.float().mean(0)).square().mean() for fake, true in zip(refined, real)]
    return torch.stack(gaps).mean()


def r1_penalty(discriminator: nn.Module, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(D's logits on ``real``, the R1 penalty: the mean over images of ||d/dx sum of patch realness||^2).

    R1 (Mescheder et al., ICML 2018) keeps D flat around the real images, the
    regulariser that makes GAN training converge locally; on a few thousand real
    images it also stops D from carving sharp bumps around each one. The logits
    come back so that D's loss needs no second forward pass.
    """
    real = real.detach().requires_grad_(True)
    logits = discriminator(real)
    (grad,) = torch.autograd.grad(realness(logits).sum(), real, create_graph=True)
    return logits, grad.float().square().flatten(1).sum(1).mean()


def patch_accuracy(logits: torch.Tensor, target: int) -> float:
    """Share of patches that D assigns to ``target``."""
    return float((logits.argmax(dim=1) == target).float().mean())


def _check_logits(logits: torch.Tensor) -> None:
    if logits.ndim != 4 or logits.shape[1] != 2:
        raise ValueError(f"discriminator logits must be (B, 2, h, w), got {tuple(logits.shape)}")
