"""The evaluation's PNG figures: samples, the downstream bar chart, realism over training."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from refinekit.data.image_set import to_float
from refinekit.evaluation.downstream import DownstreamResult
from refinekit.training.run_figures import save_sample_grid


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sample_figure(path: Path, synthetic: np.ndarray, refined: np.ndarray, real: np.ndarray, count: int = 8) -> Path:
    """Rows of synthetic | refined | |difference| x4 | real, from held-out images."""
    save_sample_grid(
        path,
        to_float(torch.from_numpy(synthetic[:count])),
        to_float(torch.from_numpy(refined[:count])),
        to_float(torch.from_numpy(real[:count])),
    )
    return path


def downstream_figure(path: Path, results: Sequence[DownstreamResult], metric: str, units: str) -> Path:
    """Bars of the headline metric per training set; whiskers are the 95% CI (one seed) or the seed std."""
    plt = _pyplot()
    names = [r.trained_on for r in results]
    share = results[0].per_seed[0][metric].interval == "wilson"
    scale = 100.0 if share else 1.0
    means = [scale * r.mean[metric] for r in results]
    if len(results[0].seeds) > 1:
        errors = np.array([[scale * r.seed_std[metric]] * 2 for r in results]).T
        whisker = f"std over {len(results[0].seeds)} seeds"
    else:
        errors = np.array(
            [[scale * (r.mean[metric] - r.per_seed[0][metric].low), scale * (r.per_seed[0][metric].high - r.mean[metric])]
             for r in results]
        ).T
        whisker = "95% CI"
    fig, ax = plt.subplots(figsize=(5, 4))
    bars = ax.bar(names, means, yerr=errors, capsize=6, color=["#9e9e9e", "#1f77b4", "#2ca02c"][: len(names)])
    for bar, value, above in zip(bars, means, errors[1]):
        ax.annotate(f"{value:.1f}" if share else f"{value:.2f}", (bar.get_x() + bar.get_width() / 2, value + above),
                    ha="center", va="bottom", xytext=(0, 3), textcoords="offset points")
    ax.margins(y=0.12)
    unit = "%" if share else units
    ax.set(ylabel=f"{metric}{f' ({unit})' if unit else ''} on real test images", xlabel="task model trained on",
           title=f"downstream {metric} (whiskers: {whisker})")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def training_figure(path: Path, log: Sequence[dict[str, Any]], metric_key: str | None) -> Path:
    """Held-out realism accuracy (with its CI) and, if given, a label metric over training steps."""
    plt = _pyplot()
    rows = [r for r in log if r.get("phase") != "synthetic"]
    baseline = next((r for r in log if r.get("phase") == "synthetic"), None)
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [100 * r["realism_accuracy"] for r in rows], "o-", color="#1f77b4", label="refined vs real")
    ax.fill_between(steps, [100 * r["realism_low"] for r in rows], [100 * r["realism_high"] for r in rows],
                    color="#1f77b4", alpha=0.2)
    if baseline is not None:
        ax.axhline(100 * baseline["realism_accuracy"], color="#9e9e9e", ls="--", label="synthetic vs real")
    ax.axhline(50, color="black", lw=0.8, ls=":", label="chance (indistinguishable)")
    ax.set(xlabel="training step", ylabel="held-out realism accuracy (%)", ylim=(40, 101),
           title="realism over training (lower is more realistic)")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if metric_key is not None and any(metric_key in r for r in rows):
        right = ax.twinx()
        right.plot(steps, [r.get(metric_key) for r in rows], "s-", color="#d62728", label=metric_key)
        right.set_ylabel(metric_key, color="#d62728")
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
