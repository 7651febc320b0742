"""Draw the figures of the Concepts page from the real components.

Every number in these figures (shapes, receptive fields, patch grid, psi maps)
is measured on refinekit's own modules, so the figures change when the code
does. Regenerate them after changing a component::

    python docs/figures/make_figures.py          # writes docs/img/*.png
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import FancyArrowPatch, Rectangle  # noqa: E402

from refinekit.components.discriminators import LocalPatchDiscriminator  # noqa: E402
from refinekit.components.refiners import SimGANResNet  # noqa: E402
from refinekit.components.regularizers import SelfRegularizer  # noqa: E402
from refinekit.config import ScheduleConfig  # noqa: E402
from refinekit.data.image_set import resize_uint8, to_float  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REAL_EYES = ROOT / "plugins" / "eyes" / "refinekit_eyes" / "data" / "mpiigaze-real-eyes-1500.npz"
SIZE = (35, 55)  # the paper's eye images
EYE_INDEX = 7  # a clearly visible iris in the embedded sample


def eye_image() -> torch.Tensor:
    """One real MPIIGaze eye (from the eyes plugin's embedded sample) as (1, 1, 35, 55) in [-1, 1]."""
    patches = np.load(REAL_EYES)["images"][EYE_INDEX : EYE_INDEX + 1, None]
    return to_float(torch.from_numpy(resize_uint8(patches, SIZE)))


def receptive_field(module: torch.nn.Module, size: tuple[int, int], row: int, col: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), inclusive, of the input pixels that reach output position (row, col).

    Measured, not computed from layer arithmetic: the gradient of one output
    logit is non-zero exactly on the pixels it sees. Positive weights and inputs
    keep every ReLU open. A max-pool passes gradient to one pixel per window, so
    it is measured as an average pool of the same window, which sees the same pixels.
    """
    module = copy.deepcopy(module).eval()
    for name, child in list(module.named_modules()):
        if isinstance(child, torch.nn.MaxPool2d):
            parent, _, attr = name.rpartition(".")
            pool = torch.nn.AvgPool2d(child.kernel_size, child.stride, child.padding)
            setattr(module.get_submodule(parent) if parent else module, attr, pool)
    with torch.no_grad():
        for p in module.parameters():  # 0.5/fan-in keeps deep stacks away from tanh saturation
            p.fill_(0.5 / p[0].numel() if p.ndim > 1 else 0.0)
    x = torch.ones(1, 1, *size, requires_grad=True)
    module(x)[0, :, row, col].sum().backward()
    rows, cols = torch.nonzero(x.grad[0, 0], as_tuple=True)
    return int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max())


def output_shapes(module: torch.nn.Module, size: tuple[int, int]) -> list[tuple[str, tuple[int, ...]]]:
    """(layer description, output shape) for each top-level layer, measured with forward hooks."""
    shapes: list[tuple[str, tuple[int, ...]]] = []
    leaves = [m for m in module.modules() if not list(m.children()) and not isinstance(m, torch.nn.ReLU)]
    handles = [m.register_forward_hook(lambda m, i, o: shapes.append((describe(m), tuple(o.shape[1:])))) for m in leaves]
    with torch.no_grad():
        module(torch.zeros(1, 1, *size))
    for h in handles:
        h.remove()
    return shapes


def describe(layer: torch.nn.Module) -> str:
    if isinstance(layer, torch.nn.Conv2d):
        k, s = layer.kernel_size[0], layer.stride[0]
        return f"conv {k}x{k}" + (f"/{s}" if s > 1 else "") + f", {layer.out_channels}"
    if isinstance(layer, torch.nn.MaxPool2d):
        return f"max-pool {layer.kernel_size}x{layer.kernel_size}/{layer.stride}"
    return type(layer).__name__


def draw_receptive_field(out: Path) -> None:
    image = eye_image()
    d = LocalPatchDiscriminator(channels=1)
    with torch.no_grad():
        grid = d(image).shape[-2:]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.9))
    for axis in (left, right):
        axis.imshow(image[0, 0].numpy(), cmap="gray", vmin=-1, vmax=1)
        axis.set_xticks([])
        axis.set_yticks([])
    for (row, col), colour in (((4, 7), "tab:orange"), ((0, 0), "tab:cyan"), ((8, 13), "tab:pink")):
        top, lft, bottom, rgt = receptive_field(LocalPatchDiscriminator(channels=1), SIZE, row, col)
        label = f"logit ({row}, {col}) sees {bottom - top + 1}x{rgt - lft + 1} px"
        left.add_patch(
            Rectangle((lft - 0.5, top - 0.5), rgt - lft + 1, bottom - top + 1, fill=False, lw=2, ec=colour, label=label)
        )
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3, fontsize=8, frameon=False)
    left.set_title("what one patch logit sees (measured by its gradient)", fontsize=9)
    stride_y, stride_x = SIZE[0] / grid[0], SIZE[1] / grid[1]
    for r in range(grid[0]):
        for c in range(grid[1]):
            right.plot((c + 0.5) * stride_x - 0.5, (r + 0.5) * stride_y - 0.5, "o", ms=3, color="tab:orange")
    right.set_title(f"{grid[0]}x{grid[1]} = {grid[0] * grid[1]} patch decisions per 35x55 image", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def draw_networks(out: Path) -> None:
    fig, axes = plt.subplots(2, 1, figsize=(11, 3.4))
    refiner = SimGANResNet(channels=1)
    stages = [("input", (1, *SIZE))]
    block_shapes = output_shapes(refiner, SIZE)
    stages.append((block_shapes[0][0], block_shapes[0][1]))
    stages.append((f"{len(refiner.blocks)} ResNet blocks\n(2 conv 3x3, 64, + skip)", block_shapes[-2][1]))
    stages.append((block_shapes[-1][0] + ", tanh", block_shapes[-1][1]))
    params = sum(p.numel() for p in refiner.parameters())
    _draw_chain(axes[0], stages, f"refiner R ({params:,} parameters): no striding, output = input size")
    disc = LocalPatchDiscriminator(channels=1)
    d_stages = [("input", (1, *SIZE))] + output_shapes(disc, SIZE)
    params = sum(p.numel() for p in disc.parameters())
    _draw_chain(axes[1], d_stages, f"local-patch discriminator D ({params:,} parameters): one 2-class decision per patch")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _draw_chain(axis: plt.Axes, stages: list[tuple[str, tuple[int, ...]]], title: str) -> None:
    axis.set_xlim(0, len(stages))
    axis.set_ylim(0, 1)
    axis.axis("off")
    axis.set_title(title, fontsize=10, loc="left")
    for i, (name, shape) in enumerate(stages):
        axis.add_patch(Rectangle((i + 0.08, 0.2), 0.84, 0.6, fc="#e8eef7", ec="#4a6fa5"))
        axis.text(i + 0.5, 0.58, name, ha="center", va="center", fontsize=8)
        axis.text(i + 0.5, 0.32, "x".join(str(s) for s in shape), ha="center", va="center", fontsize=8, color="#444")
        if i:
            axis.add_patch(FancyArrowPatch((i - 0.08, 0.5), (i + 0.08, 0.5), arrowstyle="->", mutation_scale=10))


def draw_psi(out: Path) -> None:
    image = eye_image()
    maps = [("x (synthetic or refined)", image[0, 0])]
    maps.append(("psi = low-pass", SelfRegularizer(psi="low-pass").psi(image)[0, 0]))
    sobel = SelfRegularizer(psi="sobel").psi(image)[0]
    maps.append(("psi = sobel (d/dx)", sobel[0]))
    maps.append(("psi = sobel (d/dy)", sobel[1]))
    fig, axes = plt.subplots(1, len(maps), figsize=(11, 2.2))
    for axis, (title, values) in zip(axes, maps):
        axis.imshow(values.detach().numpy(), cmap="gray")
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def draw_schedule(out: Path) -> None:
    s = ScheduleConfig()
    fig, (overview, round_axis) = plt.subplots(2, 1, figsize=(11, 2.8), gridspec_kw={"height_ratios": [1, 1]})
    phases = [
        ("pre-train R\n(self-regularisation only)", s.refiner_pretrain_steps, "#9ecae1"),
        ("pre-train D", s.discriminator_pretrain_steps, "#fdae6b"),
        (f"{s.steps} adversarial rounds", s.steps, "#a1d99b"),
    ]
    start = 0
    for name, length, colour in phases:
        overview.barh(0, length, left=start, color=colour, ec="k")
        overview.text(start + length / 2, 0, f"{name}\n{length} steps", ha="center", va="center", fontsize=8)
        start += length
    overview.set_yticks([])
    overview.set_xlabel("step (refinekit counts one round as one step)", fontsize=8)
    overview.set_title("default schedule (ScheduleConfig defaults; recipes change them)", fontsize=9, loc="left")
    updates = ["R"] * s.k_g + ["D"] * s.k_d
    for i, who in enumerate(updates):
        colour = "#9ecae1" if who == "R" else "#fdae6b"
        round_axis.barh(0, 1, left=i, color=colour, ec="k")
        label = "R: lambda*reg + adversarial" if who == "R" else "D: half current, half history"
        round_axis.text(i + 0.5, 0, label, ha="center", va="center", fontsize=8)
    round_axis.set_xlim(0, len(updates))
    round_axis.set_yticks([])
    round_axis.set_xticks([])
    round_axis.set_title(f"one adversarial round: k_g = {s.k_g} refiner updates, then k_d = {s.k_d}", fontsize=9, loc="left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def draw_history_buffer(out: Path) -> None:
    fig, axis = plt.subplots(figsize=(11, 2.6))
    axis.set_xlim(0, 11)
    axis.set_ylim(0, 3)
    axis.axis("off")
    boxes = {
        "synthetic batch": (0.2, 1.1),
        "R": (2.2, 1.1),
        "b/2 current\nrefined": (4.2, 1.9),
        "history buffer\n(B earlier refined)": (4.2, 0.3),
        "D batch: b refined\n+ b real": (6.9, 1.1),
        "D update": (9.2, 1.1),
    }
    for name, (x, y) in boxes.items():
        axis.add_patch(Rectangle((x, y), 1.6, 0.8, fc="#e8eef7", ec="#4a6fa5"))
        axis.text(x + 0.8, y + 0.4, name, ha="center", va="center", fontsize=8)
    arrows = [
        ((1.8, 1.5), (2.2, 1.5), ""),
        ((3.8, 1.6), (4.2, 2.2), ""),
        ((5.8, 2.3), (6.9, 1.7), ""),
        ((5.8, 0.7), (6.9, 1.3), "b/2 sampled"),
        ((8.5, 1.5), (9.2, 1.5), ""),
        ((5.0, 1.9), (5.0, 1.1), "then pushed\n(random slots)"),
    ]
    for start, end, label in arrows:
        axis.add_patch(FancyArrowPatch(start, end, arrowstyle="->", mutation_scale=12))
        if label:
            axis.text((start[0] + end[0]) / 2 + 0.1, (start[1] + end[1]) / 2, label, fontsize=7, ha="left")
    axis.set_title("each discriminator update (paper section 2.3)", fontsize=9, loc="left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


FIGURES = {
    "receptive-field.png": draw_receptive_field,
    "networks.png": draw_networks,
    "psi.png": draw_psi,
    "schedule.png": draw_schedule,
    "history-buffer.png": draw_history_buffer,
}


def main(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in FIGURES.items():
        draw(out_dir / name)
        written.append(out_dir / name)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    for path in main(parser.parse_args().out):
        print(path)
