"""The report's plots: quality against cost (with the Pareto front), against the label budget
(prompting arms as bands), its spread over prompts, and across model sizes."""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .load import REFERENCE_DTYPE  # noqa: E402
from .stats import (  # noqa: E402
    arm_order,
    best,
    complete,
    dtypes,
    fitted,
    pareto_front,
    prompting,
)
from .words import label, params  # noqa: E402

BAND_COLORS = ("tab:gray", "tab:green", "tab:olive", "tab:cyan")  # prompting arms' bands


def plot_quality_vs_cost(table: pd.DataFrame, metric: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 5))
    front = pareto_front(table)
    for (arm, dtype), group in table.groupby(["arm", "dtype"]):
        ax.errorbar(group["usd_per_1k"], group["quality"], yerr=group["quality_ci"].fillna(0),
                    fmt="o", label=label(arm, dtype), capsize=3)
    edge = table[front].sort_values("usd_per_1k")
    ax.plot(edge["usd_per_1k"], edge["quality"], "k--", lw=1, label="Pareto front")
    if (table["usd_per_1k"] > 0).any():
        ax.set_xscale("log")
    unpriced = int(table["usd_per_1k"].isna().sum())
    ax.set(xlabel="USD per 1,000 predictions (log)"
           + (f"; {unpriced} cell(s) without a cost not shown" if unpriced else ""),
           ylabel=metric, title=f"Quality vs inference cost (N={int(table['runs'].sum())} runs)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_data_efficiency(table: pd.DataFrame, metric: str, path: Path) -> None:
    """Fine-tuned arms against the label budget, prompting arms as horizontal bands (at
    reduced precision: dashed lines, no band)."""
    fig, ax = plt.subplots(figsize=(7, 5))
    for dtype in dtypes(table):
        cells_of = table[table["dtype"] == dtype]
        style = "-" if dtype == REFERENCE_DTYPE else "--"
        for arm in arm_order(fitted(cells_of)):
            cells = cells_of[cells_of["arm"] == arm].sort_values("n_labels")
            if not cells.empty:
                ax.errorbar(cells["n_labels"], cells["quality"],
                            yerr=cells["quality_ci"].fillna(0), marker="o", capsize=3,
                            linestyle=style, label=label(arm, dtype))
        prompts = prompting(cells_of)
        for arm, color in zip(arm_order(prompts), BAND_COLORS, strict=False):
            top = best(prompts[prompts["arm"] == arm])
            if top is None:
                continue
            if dtype == REFERENCE_DTYPE:
                ci = 0 if math.isnan(top["quality_ci"]) else top["quality_ci"]
                ax.axhspan(top["quality"] - ci, top["quality"] + ci, color=color, alpha=0.25)
            ax.axhline(top["quality"], color=color, lw=1, linestyle=style,
                       label=f"{label(arm, dtype)} (k={int(top['n_labels'])})")
    budgets = sorted(fitted(table)["n_labels"].unique())
    if budgets and min(budgets) > 0:
        ax.set_xscale("log")
        ax.set_xticks(budgets, [str(int(n)) for n in budgets])  # the budgets, not 3x10^1
        ax.minorticks_off()
    ax.set(xlabel="labelled training examples (log)", ylabel=metric,
           title="How many labels is a prompt worth?")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_prompt_sensitivity(runs: pd.DataFrame, metric: str, path: Path) -> None:
    """Spread of quality across templates, demo orders and seeds for the prompting arms."""
    runs = complete(runs)
    fig, ax = plt.subplots(figsize=(7, 4))
    labels, data = [], []
    for (dtype, arm, k), group in prompting(runs).groupby(["dtype", "arm", "n_labels"]):
        labels.append(f"{label(arm, dtype)}\nk={k}\n({len(group)} runs)")
        data.append(group["quality"].dropna().tolist())
    if data:
        ax.boxplot(data, tick_labels=labels)
    ax.set(ylabel=metric, title="Prompt sensitivity (templates x demo orders x seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_model_scale(scale: pd.DataFrame, metric: str, task: str, path: Path) -> None:
    """Quality per model (x axis, by parameter count, API models last), one line per arm."""
    keys = list(dict.fromkeys(zip(scale["model"], scale["dtype"], strict=True)))
    where = {key: i for i, key in enumerate(keys)}
    sizes = dict(zip(zip(scale["model"], scale["dtype"], strict=True), scale["model_params"],
                     strict=True))
    fig, ax = plt.subplots(figsize=(max(7.0, 1.2 * len(keys)), 5))
    for i, arm in enumerate(dict.fromkeys(scale["arm"])):
        cells = scale[scale["arm"] == arm]
        # a line through the local float32 models; reduced precision (hollow) and API models
        # as points of their own
        line = (cells["dtype"] == REFERENCE_DTYPE) & cells["model_params"].notna()
        for part, style in ((cells[line], {"marker": "o", "label": arm}),
                            (cells[~line], {"marker": "o", "linestyle": "none",
                                            "markerfacecolor": "none",
                                            "label": None if line.any() else arm})):
            if not part.empty:
                ax.errorbar([where[k] for k in zip(part["model"], part["dtype"], strict=True)],
                            part["quality"], yerr=part["quality_ci"].fillna(0), capsize=3,
                            color=f"C{i}", **style)
    ax.set_xticks(range(len(keys)), [f"{label(m, d)}\n{params(sizes[(m, d)])}"
                                      for m, d in keys])
    ax.set(xlabel="model, by parameter count (API models last; hollow: reduced precision "
                  "or API)", ylabel=metric,
           title=f"{task}: quality by model size")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)




def plot_cost_vs_volume(costs: pd.DataFrame, crossings: pd.DataFrame, task: str,
                        path: Path) -> None:
    """Total cost against the number of predictions, one line per arm (a fine-tuned arm
    starts at its up-front cost), break-even volumes marked where a fine-tuned line crosses
    below a prompting one."""
    finite = crossings["break_even_predictions"].replace(math.inf, math.nan).dropna() \
        if not crossings.empty else pd.Series(dtype=float)
    top = max(1e6, 10 * finite.max()) if not finite.empty else 1e6
    volumes = np.logspace(0, math.log10(top), 200)
    fig, ax = plt.subplots(figsize=(7, 5))
    for i, (_, row) in enumerate(costs.iterrows()):
        name = f"{row['model']}/{row['arm']}"
        ax.plot(volumes, row["up_front"] + volumes * row["per_call"], color=f"C{i}",
                linestyle="-" if row["fit"] else "--", label=name)
    for _, cross in crossings[crossings["break_even_predictions"] < math.inf].iterrows() \
            if not crossings.empty else []:
        v = cross["break_even_predictions"]
        y = cross["up_front_usd"] + v * cross["per_call_usd_fine_tuned"]
        ax.plot([v], [y], "kx")
        ax.annotate(f"{v:,.0f}", (v, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    if (costs["up_front"] + costs["per_call"] > 0).all():
        ax.set_yscale("log")
    ax.set(xlabel="predictions served", ylabel="total USD (training + calls)",
           title=f"{task}: total cost by volume (x: break-even)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
