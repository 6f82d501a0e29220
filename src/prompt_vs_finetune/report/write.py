"""Write the report: table.csv, report.md, the plots, one recommendation file per task x model
and summary.json (for `dvc metrics`), under one folder."""

import json
import math
from pathlib import Path

import pandas as pd

from .costs import arm_costs, at_volume, break_even
from .load import QUALITY
from .markdown import (
    break_even_table,
    cells_table,
    precision_table,
    scale_table,
    sensitivity_table,
    volume_table,
)
from .plots import (
    plot_cost_vs_volume,
    plot_data_efficiency,
    plot_model_scale,
    plot_prompt_sensitivity,
    plot_quality_vs_cost,
)
from .stats import (
    complete,
    dtypes,
    model_scale,
    pareto_front,
    precision_effect,
    reduced,
    reference,
    sensitivity,
    summarise,
)
from .words import advise, recommend_scale


def write_report(runs: pd.DataFrame, out: Path, volume: int | None = None) -> dict:
    """Write table.csv, report.md, plots and summary.json under `out`; return the summary.
    `volume`: also rank every arm by its total cost for that many predictions."""
    runs = complete(runs)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    table = summarise(runs)
    table.drop(columns=["examples"]).to_csv(out / "table.csv", index=False)
    trials = runs[runs["hpo_trial"].astype(bool)]
    summary: dict = {"runs": len(runs), "tasks": {}, "break_even": {}}
    md = ["# prompt vs fine-tune: report", "",
          f"{len(runs) - len(trials)} finished runs"
          + (f" (and {len(trials)} search trials, counted in up-front cost only)"
             if len(trials) else "")
          + ". A cell is one experiment: runs of the same config that differ only in their "
          "seeds, on the same test set (cells that share an arm and a label budget name what "
          "sets them apart: variant). Quality: the cell's mean with a 95% interval from a "
          "bootstrap over the test examples and the seeds († where runs logged no per-example "
          "values: a t-interval over seeds). Classification ranks labels as scorer.length_norm "
          "says (per character by default). USD per 1k predictions: each prediction charged "
          "its own tokens, demos included, at the hardware's price (modelled; the wall-time "
          "cost is logged beside it). N labels: every labelled example the arm touched "
          "(train and validation, or its demos).", ""]
    if reduced(table):
        md += ["Some runs were scored at reduced precision (`inference_dtype`): they are cells "
               "of their own (dtype column), each compared with its float32 twin in a precision "
               "table.", ""]
    for task, task_cells in table.groupby("task"):
        for model, cells in task_cells.groupby("model"):
            kind = cells["kind"].iloc[0]
            metric = QUALITY[kind].removeprefix("test/")
            stem = f"{task}_{model}"
            task_runs = runs[(runs["task"] == task) & (runs["model"] == model)]
            plot_quality_vs_cost(cells, metric, plots / f"{stem}_quality_vs_cost.png")
            plot_data_efficiency(cells, metric, plots / f"{stem}_data_efficiency.png")
            plot_prompt_sensitivity(task_runs, metric, plots / f"{stem}_prompt_sensitivity.png")
            advice = advise(cells, metric)
            shown = cells.assign(pareto=pareto_front(cells))
            spread = sensitivity(task_runs)
            effect = precision_effect(cells) if reduced(cells) else pd.DataFrame()
            md += [f"## {task} / {model}", "", *_ranking(task_runs, kind),
                   cells_table(shown, metric), "",
                   *(precision_table(effect, metric) if not effect.empty else []),
                   "**Recommendation**", "", *[f"- {line}" for line in advice], "",
                   *(sensitivity_table(spread, metric) if len(task_runs) > len(cells)
                     else []),
                   f"![quality vs cost](plots/{stem}_quality_vs_cost.png) "
                   f"![data efficiency](plots/{stem}_data_efficiency.png) "
                   f"![prompt sensitivity](plots/{stem}_prompt_sensitivity.png)", ""]
            summary["tasks"][f"{task}/{model}"] = _summary_cells(cells, metric)
            (out / f"recommendation_{stem}.txt").write_text("\n".join(advice) + "\n")
        md += _cost_section(task, task_cells, trials, volume, plots, summary)
        if task_cells["model"].nunique() > 1:
            metric = QUALITY[task_cells["kind"].iloc[0]].removeprefix("test/")
            scale = model_scale(task_cells)
            plot_model_scale(scale, metric, task, plots / f"{task}_model_scale.png")
            advice = recommend_scale(scale, metric)
            md += [f"## {task}: model scale", "", *scale_table(scale, metric),
                   "**Recommendation**", "", *[f"- {line}" for line in advice], "",
                   f"![model scale](plots/{task}_model_scale.png)", ""]
            summary.setdefault("model_scale", {})[task] = {
                "metric": metric,
                "cells": [{"model": r["model"], "dtype": r["dtype"], "arm": r["arm"],
                           "n_labels": int(r["n_labels"]), "total_params": r["model_params"],
                           "runs": int(r["runs"]), "quality": r["quality"],
                           "quality_ci": r["quality_ci"], "perplexity": r["perplexity"],
                           "bits_per_byte": r["bits_per_byte"],
                           "unparsed_rate": r["unparsed_rate"], "usd_per_1k": r["usd_per_1k"]}
                          for _, r in scale.iterrows()]}
            (out / f"recommendation_{task}_model_scale.txt").write_text("\n".join(advice) + "\n")
    (out / "report.md").write_text("\n".join(md))
    summary = _json_safe(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
    return summary


def _ranking(runs: pd.DataFrame, kind: str) -> list[str]:
    """Which normalisation ranked the labels (classification), from the runs' own config."""
    if kind != "classification":
        return []
    norms = sorted({p.get("scorer.length_norm", "none") for p in runs["params"]})
    return [f"Labels ranked by log-likelihood with scorer.length_norm={', '.join(norms)} "
            "(each run also logs test/accuracy_sum and test/accuracy_char).", ""]


def _cost_section(task: str, cells: pd.DataFrame, trials: pd.DataFrame, volume: int | None,
                  plots: Path, summary: dict) -> list[str]:
    """Which arm is cheaper at which volume, for one task across its models."""
    search = trials[trials["task"] == task].groupby(["model", "arm"])["train_usd"].sum()
    costs = arm_costs(cells, search)
    if costs["per_call"].isna().all():
        return []
    crossings = break_even(costs)
    plot_cost_vs_volume(costs, crossings, task, plots / f"{task}_cost_vs_volume.png")
    summary["break_even"][task] = crossings.to_dict("records")
    metric = QUALITY[cells["kind"].iloc[0]].removeprefix("test/")
    lines = [f"## {task}: cost by volume", "",
             "Up-front: training (and any hyper-parameter search); per call: the modelled cost "
             "of one prediction. Each arm at its best cell.", "",
             *(break_even_table(crossings) if not crossings.empty else []),
             f"![cost vs volume](plots/{task}_cost_vs_volume.png)", ""]
    if volume:
        ranked = at_volume(costs, volume)
        summary.setdefault("at_volume", {})[task] = {
            "volume": volume, "ranked": ranked[["arm_name", "total_usd", "quality"]]
            .to_dict("records")}
        lines += volume_table(ranked, volume, metric)
    return lines


def _summary_cells(cells: pd.DataFrame, metric: str) -> dict:
    """summary.json for one task x model: best quality per arm (float32 cells; per dtype too
    when some are not), and the unparsed rate per arm where runs logged one."""
    def best(rows: pd.DataFrame) -> dict:
        return {arm: round(float(g["quality"].max()), 4) for arm, g in rows.groupby("arm")}

    entry: dict = {"metric": metric, "best": best(reference(cells))}
    if reduced(cells):
        entry["best_by_dtype"] = {dtype: best(cells[cells["dtype"] == dtype])
                                  for dtype in dtypes(cells)}
    if (cells["unparsed_rate"] > 0).any():
        entry["unparsed_rate"] = {arm: float(g["unparsed_rate"].mean())
                                  for arm, g in cells.groupby("arm")}
    return entry


def _json_safe(value):
    """`value` with NaN and infinities as None (JSON null) and numpy scalars as Python ones."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
