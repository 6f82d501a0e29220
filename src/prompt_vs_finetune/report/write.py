"""Write the report's files under one folder (docs/report.md)."""

import base64
import html
import json
from functools import partial
from pathlib import Path
from string import Template

import pandas as pd
from markdown_it import MarkdownIt

from . import cells as stats
from . import plots, tables
from .cells import dtypes, reduced, summarise
from .verdict import advise, recommend_scale

TITLE = "prompt vs fine-tune: report"
NOTES = (  # what a cell, an interval, a cost and a label budget mean
    "A cell is one experiment: runs of the same config that differ only in their seeds, on the "
    "same test set (cells that share an arm and a label budget name what sets them apart: "
    "variant). Quality: the cell's mean with a 95% interval: a bootstrap over the test examples, "
    "widened by the seeds' t-interval where a cell has 3 seeds or more († where runs logged no "
    "per-example values: a t-interval over seeds). The verdict compares each side only at the "
    "configuration it would choose without the test set: the best on its budget's validation "
    "labels. Classification ranks labels as scorer.length_norm says (per character by default). "
    "USD per 1k predictions: each prediction charged its own tokens, demos included, at the "
    "hardware's price (modelled; the wall-time cost is logged beside it). N labels: every labelled "
    "example the arm touched (its train_size budget: train and validation; a prompting run without "
    "one, its demos).")


def latest_of_identical(runs: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """(the runs, each identical rerun replaced by the latest, how many replaced)."""
    kept = runs.sort_values("started").drop_duplicates("identity", keep="last")
    return runs[runs.index.isin(kept.index)], len(runs) - len(kept)


def picks(runs: pd.DataFrame) -> pd.DataFrame:
    """What the verdict compares: each side's configuration chosen per task x model x dtype x
    label budget (cells.chosen over the cells write_report builds; pipelines' choose.py)."""
    return stats.chosen(summarise(latest_of_identical(runs)[0]))


def write_report(runs: pd.DataFrame, out: Path, volume: int | None = None) -> dict:
    """Write the report under `out`, return its summary; `volume`: rank arms by total cost at it."""
    runs, reruns = latest_of_identical(runs)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    table = summarise(runs)
    table.drop(columns=["examples", "val_by_seed"]).to_csv(out / "table.csv", index=False)
    trials = runs[runs["hpo_trial"].astype(bool)]
    summary: dict = {"runs": len(runs), "identical_reruns_replaced": reruns, "tasks": {},
                     "break_even": {}}
    md = [f"# {TITLE}", "", f"{len(runs) - len(trials)} finished runs" + (
        f" (and {len(trials)} search trials, counted in up-front cost only)" if len(trials) else ""
    ) + (f"; {reruns} identical rerun(s) (same config, seed, data and code as a later run) left "
         "out, so each seed counts once" if reruns else "") + ". " + NOTES, ""]
    if reduced(table):
        md += ["Some runs were scored at reduced precision (`inference_dtype`): they are cells of "
               "their own (dtype column), each compared with its float32 twin in a precision "
               "table.", ""]
    colors = plots.arm_colors(runs["arm"])  # one colour per arm in every plot
    for task, task_cells in table.groupby("task"):
        task_runs = runs[runs["task"] == task]
        classes = set(task_runs["n_classes"].dropna().astype(int))  # for the chance line
        chance = classes.pop() if len(classes) == 1 else None
        metric = task_cells["metric"].iloc[0].removeprefix("test/")  # the task type's headline
        for model, cells in task_cells.groupby("model"):
            md += _model_section(task, model, metric, cells, task_runs[task_runs["model"] == model],
                                 chance, out, colors, summary)
        md += _cost_section(task, metric, task_cells, trials, volume, out, summary, colors)
        if task_cells["model"].nunique() > 1:
            md += _scale_section(task, metric, task_cells, chance, out, colors, summary)
    (out / "report.md").write_text("\n".join(md))
    (out / "report.html").write_text(render_html("\n".join(md), out))
    # numpy scalars as Python ones, then NaN and infinities as null
    summary = json.loads(json.dumps(summary, default=lambda v: v.item()),
                         parse_constant=lambda _: None)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
    return summary


def _model_section(task: str, model: str, metric: str, cells: pd.DataFrame,
                   task_runs: pd.DataFrame, chance, out: Path, colors: dict,
                   summary: dict) -> list[str]:
    """One task on one model: its cells, the recommendation, prompt sensitivity, plots."""
    style = {"colors": colors, "n_classes": chance}
    figures = _figures(out / "plots" / f"{task}_{model}", {
        "quality vs cost": partial(plots.plot_quality_vs_cost, cells, metric, **style),
        "data efficiency": partial(plots.plot_data_efficiency, cells, metric, **style),
        "prompt sensitivity": partial(plots.plot_prompt_sensitivity, task_runs, metric, **style),
        "consistency": partial(plots.plot_consistency, cells, colors=colors)})
    effect = stats.precision_effect(cells) if reduced(cells) else pd.DataFrame()
    picks = stats.chosen(cells)
    summary["tasks"][f"{task}/{model}"] = _summary_cells(cells, metric) | {"chosen": picks[[
        "side", "dtype", "n_labels", "arm", "variant", "quality", "quality_low", "quality_high",
        "configs", "search_usd"]].to_dict("records")}
    norms = sorted({p.get("scorer.length_norm", "none") for p in task_runs["params"]})
    ranking = [f"Labels ranked by log-likelihood with scorer.length_norm={', '.join(norms)} "
               "(each run also logs test/accuracy_sum and test/accuracy_char).", ""]
    return [f"## {task} / {model}", "",
            *(ranking if task_runs["metric"].eq("test/accuracy").any() else []),
            *tables.cells_table(cells.assign(pareto=stats.pareto_front(cells)), metric),
            *tables.learning_curve_table(picks, metric),
            *(tables.precision_table(effect, metric) if not effect.empty else []),
            *_recommendation(out / f"recommendation_{task}_{model}.txt",
                             advise(cells, metric, effect)),
            *(tables.sensitivity_table(stats.sensitivity(task_runs), metric)
              if len(task_runs) > len(cells) else []),
            *figures]


def _scale_section(task: str, metric: str, task_cells: pd.DataFrame, chance, out: Path,
                   colors: dict, summary: dict) -> list[str]:
    """A task run on several models: quality by model size, and its recommendation."""
    scale = stats.model_scale(task_cells)
    figures = _figures(out / "plots" / task, {"model scale": partial(
        plots.plot_model_scale, scale, metric, task, colors=colors, n_classes=chance)})
    columns = ["model", "dtype", "arm", "n_labels", "model_params", "runs", "quality",
               "quality_ci", "perplexity", "bits_per_byte", "unparsed_rate", "usd_per_1k"]
    summary.setdefault("model_scale", {})[task] = {"metric": metric, "cells": scale[columns]
        .rename(columns={"model_params": "total_params"}).to_dict("records")}
    return [f"## {task}: model scale", "", *tables.scale_table(scale, metric),
            *_recommendation(out / f"recommendation_{task}_model_scale.txt",
                             recommend_scale(scale, metric)),
            *figures]


def _recommendation(path: Path, advice: list[str]) -> list[str]:
    path.write_text("\n".join(advice) + "\n")
    return ["**Recommendation**", "", *[f"- {line}" for line in advice], ""]


def _cost_section(task: str, metric: str, cells: pd.DataFrame, trials: pd.DataFrame,
                  volume: int | None, out: Path, summary: dict, colors: dict) -> list[str]:
    """Which arm is cheaper at which volume, for one task across its models."""
    search = trials[trials["task"] == task].groupby(["model", "arm"])["train_usd"].sum()
    costs = stats.arm_costs(cells, search)
    priced = costs["per_call"].notna().any()
    crossings = stats.break_even(costs) if priced else pd.DataFrame()
    figures = _figures(out / "plots" / task, {"cost vs volume": partial(
        plots.plot_cost_vs_volume, costs, crossings, task, colors=colors)})
    lines = [f"## {task}: cost by volume", ""]
    if not priced:  # the plot's note, no table
        return [*lines, *figures]
    summary["break_even"][task] = crossings.to_dict("records")
    lines += ["Up-front: training, any search, the labels, a hybrid's teacher; per call: one "
              "prediction's modelled cost, also with a prefix cache. Each arm at its top budget.",
              "", *(tables.break_even_table(crossings, metric) if not crossings.empty else []),
              *figures]
    if volume:
        ranked = stats.at_volume(costs, volume)
        summary.setdefault("at_volume", {})[task] = {"volume": volume, "ranked": ranked[[
            "arm_name", "total_usd", "total_usd_cached", "quality"]].to_dict("records")}
        lines += tables.volume_table(ranked, volume, metric)
    return lines


def _figures(stem: Path, figures: dict) -> list[str]:
    """Draw each plot (name: a function of its path) as `<stem>_<name>.png`; report.md's lines:
    the drawn side by side, then the note of each not drawn (its old image goes)."""
    drawn, notes = [], []
    for name, plot in figures.items():
        path = stem.with_name(f"{stem.name}_{name.replace(' ', '_')}.png")
        if (note := plot(path=path)) is None:
            drawn.append(f"![{name}]({path.parent.name}/{path.name})")
        else:
            path.unlink(missing_ok=True)
            notes.append(f"*Not drawn:* {note}.")
    return [line for text in ([" ".join(drawn)] if drawn else []) + notes for line in (text, "")]


def _summary_cells(cells: pd.DataFrame, metric: str) -> dict:
    """summary.json for one task x model: best quality per arm (float32; per dtype too), that
    cell's cost per call (so `dvc metrics diff` shows a cost change alone), unparsed rates."""
    def best(rows: pd.DataFrame) -> dict:
        return {arm: round(float(g["quality"].max()), 4) for arm, g in rows.groupby("arm")}
    float32 = cells[cells["dtype"] == dtypes(cells)[0]]  # or, with none, the first dtype's
    entry: dict = {"metric": metric, "best": best(float32), "usd_per_1k_predictions": {
        arm: float(f"{g.loc[g['quality'].idxmax(), 'usd_per_1k']:.4g}")
        for arm, g in float32.groupby("arm") if g["quality"].notna().any()}}
    if reduced(cells):
        entry["best_by_dtype"] = {dtype: best(cells[cells["dtype"] == dtype])
                                  for dtype in dtypes(cells)}
    if (cells["unparsed_rate"] > 0).any():
        entry["unparsed_rate"] = cells.groupby("arm")["unparsed_rate"].mean().to_dict()
    return entry


def render_html(markdown: str, folder: Path) -> str:
    """The markdown as one page (raw HTML escaped), its plots inlined: it shows wherever it goes."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(markdown)
    for child in (c for token in tokens for c in token.children or [] if c.type == "image"):
        path = (folder / str(child.attrGet("src") or "")).resolve()  # a URL: no file there
        if path.suffix == ".png" and path.is_file() and path.is_relative_to(folder.resolve()):
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            child.attrSet("src", f"data:image/png;base64,{data}")
    page = Template((Path(__file__).parent / "page.html").read_text())
    return page.substitute(title=html.escape(TITLE),
                           body=md.renderer.render(tokens, md.options, {}))
