"""`pvf-report`: load the finished runs, group them into cells, compute the statistics, and
write the comparison (tables, plots, recommendation) that says whether to prompt or fine-tune."""

from .cli import main
from .load import load_runs, run_ids_from
from .stats import crossover, mean_ci, model_scale, pareto_front, sensitivity, summarise
from .words import recommend
from .write import write_report

__all__ = ["crossover", "load_runs", "main", "mean_ci", "model_scale", "pareto_front",
           "recommend", "run_ids_from", "sensitivity", "summarise", "write_report"]
