"""Write the report: table.csv, report.md, report.html (the same, plots embedded), the plots,
one recommendation file per task x model and summary.json (for `dvc metrics`), under one
folder. A plot with nothing to show is not drawn; report.md says why in its place."""

import json
import math
from pathlib import Path

import pandas as pd

from .costs import arm_costs, at_volume, break_even
from .html import render_html
from .load import latest_of_identical
from .markdown import (
    break_even_table,
    cells_table,
    precision_table,
    scale_table,
    sensitivity_table,
    volume_table,
)
from .plots import (
    arm_colors,
    plot_consistency,
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

TITLE = "prompt vs fine-tune: report"


def write_report(runs: pd.DataFrame, out: Path, volume: int | None = None) -> dict:
    """Write table.csv, report.md, report.html, plots and summary.json under `out`; return the
    summary.
    `volume`: also rank every arm by its total cost for that many predictions."""
    runs, reruns = latest_of_identical(runs)
    runs = complete(runs)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    table = summarise(runs)
    table.drop(columns=["examples"]).to_csv(out / "table.csv", index=False)
    trials = runs[runs["hpo_trial"].astype(bool)]
    summary: dict = {"runs": len(runs), "identical_reruns_replaced": reruns, "tasks": {},
                     "break_even": {}}
    md = _header(runs, trials, table, reruns)
    colors = arm_colors(runs["arm"])  # one colour per arm in every plot
    for task, task_cells in table.groupby("task"):
        task_runs, chance = runs[runs["task"] == task], task_classes(runs[runs["task"] == task])
        for model, cells in task_cells.groupby("model"):
            md += _model_section(task, model, cells, task_runs[task_runs["model"] == model],
                                 chance, out, colors, summary)
        md += _cost_section(task, task_cells, trials, volume, plots, summary, colors)
        if task_cells["model"].nunique() > 1:
            md += _scale_section(task, task_cells, chance, out, colors, summary)
    (out / "report.md").write_text("\n".join(md))
    (out / "report.html").write_text(render_html("\n".join(md), out, title=TITLE))
    summary = _json_safe(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
    return summary


def _header(runs: pd.DataFrame, trials: pd.DataFrame, table: pd.DataFrame,
            reruns: int) -> list[str]:
    """The title and what a cell, an interval, a cost and a label budget mean."""
    md = [f"# {TITLE}", "",
          f"{len(runs) - len(trials)} finished runs"
          + (f" (and {len(trials)} search trials, counted in up-front cost only)"
             if len(trials) else "")
          + (f"; {reruns} identical rerun(s) (same config, seed, data and code as a later "
             "run) left out, so each seed counts once" if reruns else "")
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
    return md


def _model_section(task: str, model: str, cells: pd.DataFrame, task_runs: pd.DataFrame,
                   chance, out: Path, colors: dict, summary: dict) -> list[str]:
    """One task on one model: its cells, the recommendation, prompt sensitivity, plots."""
    metric = cells["metric"].iloc[0].removeprefix("test/")
    stem, plots = f"{task}_{model}", out / "plots"
    figures = [
        _figure("quality vs cost", plots / f"{stem}_quality_vs_cost.png",
                plot_quality_vs_cost, cells, metric, colors=colors, n_classes=chance),
        _figure("data efficiency", plots / f"{stem}_data_efficiency.png",
                plot_data_efficiency, cells, metric, colors=colors, n_classes=chance),
        _figure("prompt sensitivity", plots / f"{stem}_prompt_sensitivity.png",
                plot_prompt_sensitivity, task_runs, metric, colors=colors, n_classes=chance),
        _figure("consistency", plots / f"{stem}_consistency.png", plot_consistency,
                cells, colors=colors)]
    advice = advise(cells, metric)
    shown = cells.assign(pareto=pareto_front(cells))
    spread = sensitivity(task_runs)
    effect = precision_effect(cells) if reduced(cells) else pd.DataFrame()
    summary["tasks"][f"{task}/{model}"] = _summary_cells(cells, metric)
    (out / f"recommendation_{stem}.txt").write_text("\n".join(advice) + "\n")
    return [f"## {task} / {model}", "", *_ranking(task_runs),
            cells_table(shown, metric), "",
            *(precision_table(effect, metric) if not effect.empty else []),
            "**Recommendation**", "", *[f"- {line}" for line in advice], "",
            *(sensitivity_table(spread, metric) if len(task_runs) > len(cells) else []),
            *_figures(figures)]


def _scale_section(task: str, task_cells: pd.DataFrame, chance, out: Path, colors: dict,
                   summary: dict) -> list[str]:
    """A task run on several models: quality by model size, and its recommendation."""
    metric = task_cells["metric"].iloc[0].removeprefix("test/")
    scale = model_scale(task_cells)
    figure = _figure("model scale", out / "plots" / f"{task}_model_scale.png", plot_model_scale,
                     scale, metric, task, colors=colors, n_classes=chance)
    advice = recommend_scale(scale, metric)
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
    return [f"## {task}: model scale", "", *scale_table(scale, metric),
            "**Recommendation**", "", *[f"- {line}" for line in advice], "",
            *_figures([figure])]


def _ranking(runs: pd.DataFrame) -> list[str]:
    """Which normalisation ranked the labels (runs ranked by accuracy), from their config."""
    if not runs["metric"].eq("test/accuracy").any():
        return []
    norms = sorted({p.get("scorer.length_norm", "none") for p in runs["params"]})
    return [f"Labels ranked by log-likelihood with scorer.length_norm={', '.join(norms)} "
            "(each run also logs test/accuracy_sum and test/accuracy_char).", ""]


def _cost_section(task: str, cells: pd.DataFrame, trials: pd.DataFrame, volume: int | None,
                  plots: Path, summary: dict, colors: dict) -> list[str]:
    """Which arm is cheaper at which volume, for one task across its models."""
    search = trials[trials["task"] == task].groupby(["model", "arm"])["train_usd"].sum()
    costs = arm_costs(cells, search)
    crossings = break_even(costs) if costs["per_call"].notna().any() else pd.DataFrame()
    figure = _figure("cost vs volume", plots / f"{task}_cost_vs_volume.png",
                     plot_cost_vs_volume, costs, crossings, task, colors=colors)
    lines = [f"## {task}: cost by volume", ""]
    if figure[2] is not None:  # nothing priced: the note, no table
        return [*lines, *_figures([figure])]
    summary["break_even"][task] = crossings.to_dict("records")
    metric = cells["metric"].iloc[0].removeprefix("test/")
    lines += ["Up-front: training (and any hyper-parameter search); per call: the modelled "
              "cost of one prediction. Each arm at its best cell.", "",
              *(break_even_table(crossings, metric) if not crossings.empty else []),
              *_figures([figure])]
    if volume:
        ranked = at_volume(costs, volume)
        summary.setdefault("at_volume", {})[task] = {
            "volume": volume, "ranked": ranked[["arm_name", "total_usd", "quality"]]
            .to_dict("records")}
        lines += volume_table(ranked, volume, metric)
    return lines


def task_classes(runs: pd.DataFrame) -> int | None:
    """A task's number of classes, for the chance line: the runs' own (`data/n_classes`, else
    their `task.labels.*` params) when they agree; None without labels or when unknown."""
    if runs.empty or "n_classes" not in runs:
        return None
    found = set(runs["n_classes"].dropna().astype(int))
    return found.pop() if len(found) == 1 else None


def _figure(name: str, path: Path, plot, *args, **kwargs) -> tuple[str, Path, str | None]:
    """Draw one plot: (name, path, None), or (name, path, the note) when there is nothing to
    draw; then an image left from an earlier report at that path is removed."""
    note = plot(*args, path=path, **kwargs)
    if note is not None:
        path.unlink(missing_ok=True)
    return name, path, note


def _figures(figures: list[tuple[str, Path, str | None]]) -> list[str]:
    """report.md's lines for some plots: the drawn ones side by side (relative links), then
    one line per plot not drawn saying what is missing."""
    drawn = " ".join(f"![{name}]({path.parent.name}/{path.name})"
                     for name, path, note in figures if note is None)
    notes = [f"*Not drawn:* {note}." for _, _, note in figures if note is not None]
    return [line for text in ([drawn] if drawn else []) + notes for line in (text, "")]


def _summary_cells(cells: pd.DataFrame, metric: str) -> dict:
    """summary.json for one task x model: best quality per arm (float32 cells; per dtype too
    when some are not) and what that cell's predictions cost per 1,000 (so `dvc metrics diff`
    shows an experiment that changes only the cost, such as fewer demos), and the unparsed
    rate per arm where runs logged one."""
    def best(rows: pd.DataFrame) -> dict:
        return {arm: round(float(g["quality"].max()), 4) for arm, g in rows.groupby("arm")}

    def cost_of_best(rows: pd.DataFrame) -> dict:  # what the best cell's calls cost
        return {arm: float(f"{g.loc[g['quality'].idxmax(), 'usd_per_1k']:.4g}")
                for arm, g in rows.groupby("arm") if g["quality"].notna().any()}

    float32 = reference(cells)
    entry: dict = {"metric": metric, "best": best(float32),
                   "usd_per_1k_predictions": cost_of_best(float32)}
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
