"""`pvf-report`: load the finished runs, group them into cells, compute the statistics, and
write the comparison (tables, plots, recommendation) that says whether to prompt or fine-tune.

Its names load on first use (pandas, matplotlib, MLflow and SciPy take about 2.5 s to import
on 2 cores), so `pvf-report --help` answers at once."""

import importlib

_HOME = {"main": "cli", "load_runs": "load", "run_ids_from": "load", "write_report": "write",
         "latest_of_identical": "load",
         "recommend": "words", **dict.fromkeys(
             ("crossover", "mean_ci", "model_scale", "pareto_front", "sensitivity",
              "summarise"), "stats")}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
