"""The evaluation as rich tables in the terminal: the headline numbers of report.md."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from refinekit.evaluation.report import EvaluationReport, fmt


def print_report(console: Console, report: EvaluationReport) -> None:
    """Print realism, distance, annotation and downstream tables, then the notes and where the files are."""
    realism = Table(title="realism: held-out accuracy telling each set from real (50% = indistinguishable)")
    for column in ("compared with real", "accuracy [95% CI]", "p (acc > 50%)", "test images per side"):
        realism.add_column(column)
    for r in report.realism:
        realism.add_row(r.name, fmt(r.accuracy), f"{r.p_value:.3g}", str(r.n_test))
    console.print(realism)

    distance = Table(title=f"KID x 1000 ({report.distances[0].extractor})" if report.distances else "KID")
    for column in ("sets", "KID x 1000", "std", "images"):
        distance.add_column(column)
    for d in report.distances:
        distance.add_row(d.name, f"{1000 * d.kid:.3f}", f"{1000 * d.kid_std:.3f}", f"{d.n_a} / {d.n_b}")
    console.print(distance)

    kept = Table(title="annotations kept")
    for column in ("measure", "value [95% CI]", "images"):
        kept.add_column(column)
    kept.add_row("L1 refined vs synthetic", fmt(report.fidelity.l1, False, 4), str(report.fidelity.n))
    kept.add_row("SSIM refined vs synthetic", fmt(report.fidelity.ssim, False, 4), str(report.fidelity.n))
    if report.annotations is not None and report.task is not None:
        a, key = report.annotations, report.task.metric
        kept.add_row(f"{key}: task model on synthetic", fmt(a.synthetic_vs_labels[key]), str(a.n))
        kept.add_row(f"{key}: task model on refined", fmt(a.refined_vs_labels[key]), str(a.n))
        kept.add_row(f"{key}: refined vs synthetic predictions", fmt(a.refined_vs_synthetic_predictions[key]), str(a.n))
    console.print(kept)

    if report.downstream and report.task is not None:
        key = report.task.metric
        seeds = len(report.task_seeds)
        downstream = Table(title=f"downstream: {key} on {report.downstream[0].n_test} labelled real test images")
        for column in ("trained on", "train images", f"{key} (seed {report.task_seeds[0]}, 95% CI)",
                       f"mean over {seeds} seeds (std)", "change vs synthetic"):
            downstream.add_column(column)
        for d in report.downstream:
            first = d.per_seed[0][key]
            scale = 100.0 if first.interval == "wilson" else 1.0
            change = "" if d.relative_change is None else f"{100 * d.relative_change[key]:+.1f}%"
            unit, digits = ("%", 1) if scale == 100.0 else ("", 3)
            downstream.add_row(d.trained_on, str(d.n_train), fmt(first),
                               f"{scale * d.mean[key]:.{digits}f}{unit} ({scale * d.seed_std[key]:.{digits}f}{unit})", change)
        console.print(downstream)
    for note in report.notes:
        console.print(f"[yellow]Note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    console.print(f"Wrote {escape(report.out_dir)}/report.md, report.json and {len(report.figures)} figures.",
                  highlight=False, soft_wrap=True)
