"""Does refinement help? Realism, distribution distance, annotations kept and downstream utility.

``evaluate(run_dir)`` runs every check and writes ``RUN_DIR/eval/report.md``,
``report.json`` and figures; :class:`Task` is what a domain plugin implements
(through the ``register_tasks`` hook) to get the annotation and downstream checks.
"""

from refinekit.evaluation.api import EvaluationSettings, evaluate
from refinekit.evaluation.report import EvaluationReport
from refinekit.evaluation.task import Task

__all__ = ["EvaluationReport", "EvaluationSettings", "Task", "evaluate"]
