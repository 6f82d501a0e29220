"""`pvf-report`: load the finished runs, group them into cells, compute the statistics, and
write the comparison that says whether to prompt or fine-tune (docs/report.md). Names load on
first use (pandas, matplotlib, MLflow and SciPy take seconds), so `--help` answers at once."""

import importlib

_HOME = {"main": "cli", "load_runs": "runs", "latest_of_identical": "runs",
         "write_report": "write", "recommend": "verdict", "crossover": "verdict",
         **dict.fromkeys(("summarise", "model_scale", "pareto_front", "sensitivity"), "cells")}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
