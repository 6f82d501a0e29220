"""The report's plots; one with nothing to show is not drawn: it returns what is missing."""

import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .cells import arm_order, chosen, dtype_rank, dtypes, fitted, label, pareto_front, prompting
from .mlflow_run import REFERENCE_DTYPE
from .tables import params

plt.switch_backend("Agg")  # files only, no window

ARM_COLORS = {"zero_shot": "tab:blue", "few_shot": "tab:orange", "full_finetune": "tab:green",
              "lora": "tab:red", "hybrid": "tab:purple"}
# other arm names, in sorted order: the rest of tab10, then Dark2 (cycled beyond that)
FALLBACK_COLORS = ("tab:brown", "tab:pink", "tab:olive", "tab:cyan", "#1b9e77", "#d95f02",
                   "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d")
DTYPE_MARKERS = defaultdict(lambda: "P", {"float32": "o", "bfloat16": "s", "float16": "^",
                                          "int8": "D"})


def arm_colors(arms: Iterable[str]) -> dict[str, str]:
    """Each arm's colour; pass every arm of the report so that every plot agrees."""
    others = sorted(set(arms) - set(ARM_COLORS))
    return {**ARM_COLORS, **{arm: FALLBACK_COLORS[i % len(FALLBACK_COLORS)]
                             for i, arm in enumerate(others)}}


def plot_quality_vs_cost(table: pd.DataFrame, metric: str, path: Path,
                         colors: dict, n_classes: int | None = None) -> str | None:
    priced = table[table["quality"].notna() & table["usd_per_1k"].notna()]
    if priced.empty:
        return (f"quality vs cost: no cell logged both {metric} and a per-call cost "
                "(cost/usd_per_1k_predictions)")
    fig, ax = plt.subplots(figsize=(7, 5))
    for arm in arm_order(priced):
        for dtype, group in priced[priced["arm"] == arm].groupby("dtype"):
            _quality(ax, group["usd_per_1k"], group, colors[arm], fmt=DTYPE_MARKERS[dtype],
                     label=label(arm, dtype))
    edge = priced[pareto_front(priced)].sort_values("usd_per_1k")
    ax.plot(edge["usd_per_1k"], edge["quality"], "k--", lw=1, label="Pareto front")
    if (priced["usd_per_1k"] > 0).any():
        ax.set_xscale("log")
    unpriced = len(table) - len(priced)
    ax.set(xlabel="USD per 1,000 predictions (log)"
           + (f"; {unpriced} cell(s) without a cost not shown" if unpriced else ""),
           ylabel=metric, title=f"Quality vs inference cost (N={int(table['runs'].sum())} runs)")
    return _finish(fig, path, n_classes)


def plot_data_efficiency(table: pd.DataFrame, metric: str, path: Path,
                         colors: dict, n_classes: int | None = None) -> str | None:
    """Fine-tuned arms by label budget, prompting ones as bands (dashed lines at reduced
    precision) at their largest; each as chosen on validation per budget."""
    tuned = fitted(table)
    if tuned.empty:
        return ("data efficiency: no fine-tuned arm ran; run arm=full_finetune or arm=lora at "
                "several train_size values to draw it")
    budgets = tuned.groupby("arm")["n_labels"].unique()
    if budgets.map(len).max() < 2:
        held = ", ".join(f"{arm} n={int(n[0])}" for arm, n in budgets.items())
        top = int(tuned["n_labels"].max())  # suggest budgets below it (above it if tiny)
        smaller = [n for n in (16, 64, 256, 1024, 4096) if n < top][-3:] or [4 * max(top, 4),
                                                                             16 * max(top, 4)]
        return (f"data efficiency: one label budget per fine-tuned arm ({held}); run "
                f"train_size={','.join(map(str, smaller))} to draw it")
    fig, ax = plt.subplots(figsize=(7, 5))
    picks = chosen(table, per="arm")
    for dtype in dtypes(picks):
        style = "-" if dtype == REFERENCE_DTYPE else "--"
        for arm, cells in picks[picks["dtype"] == dtype].groupby("arm"):
            cells = cells.sort_values("n_labels")
            if cells["fit"].iloc[0]:
                _quality(ax, cells["n_labels"], cells, colors[arm], marker=DTYPE_MARKERS[dtype],
                         linestyle=style, label=label(arm, dtype))
                continue
            top = cells.iloc[-1]  # a prompting arm: a band at its largest budget
            if dtype == REFERENCE_DTYPE and not math.isnan(top["quality_low"]):
                ax.axhspan(top["quality_low"], top["quality_high"], color=colors[arm], alpha=0.2)
            ax.axhline(top["quality"], color=colors[arm], lw=1, linestyle=style,
                       label=f"{label(arm, dtype)} (k={int(top['n_labels'])})")
    ticks = sorted(tuned["n_labels"].unique())
    if min(ticks) > 0:
        ax.set_xscale("log")
        ax.set_xticks(ticks, [str(int(n)) for n in ticks])  # the budgets, not 3x10^1
        ax.minorticks_off()
    ax.set(xlabel="labelled training examples (log)", ylabel=metric,
           title="How many labels is a prompt worth?")
    return _finish(fig, path, n_classes)


def plot_prompt_sensitivity(runs: pd.DataFrame, metric: str, path: Path, colors: dict,
                            n_classes: int | None = None) -> str | None:
    """One box per prompting arm and k, each run a dot."""
    prompts = prompting(runs)
    order = arm_order(prompts)
    groups = sorted(((dtype, arm, int(k), group["quality"].dropna()) for (dtype, arm, k), group
                     in prompts.groupby(["dtype", "arm", "n_labels"])),
                    key=lambda g: (order.index(g[1]), g[2], dtype_rank(g[0]), g[0]))
    if not groups:
        return "prompt sensitivity: no prompting arm ran (zero_shot, few_shot)"
    if max(len(values) for *_, values in groups) < 2:
        held = ", ".join(f"{label(arm, dtype)} k={k}" for dtype, arm, k, _ in groups)
        return (f"prompt sensitivity: one run per prompting arm and k ({held}); run several "
                "templates (task.prompt), demo orders (arm.order_seed) or seeds to draw it")
    fig, ax = plt.subplots(figsize=(7, 4))
    boxes = ax.boxplot([values.tolist() for *_, values in groups], patch_artist=True,
                       medianprops={"color": "black"},
                       tick_labels=[f"{label(arm, dtype)}\nk={k}\n({len(values)} runs)"
                                    for dtype, arm, k, values in groups])
    for x, (box, (_, arm, _, values)) in enumerate(zip(boxes["boxes"], groups, strict=True), 1):
        box.set(facecolor=colors[arm], alpha=0.35, edgecolor=colors[arm])
        jitter = np.linspace(-0.05, 0.05, len(values)) if len(values) > 1 else 0
        ax.plot(np.full(len(values), x) + jitter, values, "o", ms=3, color=colors[arm])
    ax.set(ylabel=metric, title="Prompt sensitivity (templates x demo orders x seeds)")
    return _finish(fig, path, n_classes, legend=bool(n_classes))


def plot_consistency(cells: pd.DataFrame, path: Path, colors: dict) -> str | None:
    """One bar per cell: the share of test examples every run of it answered alike."""
    shown = cells[cells["agreement"].notna()]
    if shown.empty:
        return ("consistency: no cell has two runs with predictions; run seed=0,1,2 to see "
                "whether an arm answers the same way every time")
    shown = shown.assign(_o=shown["arm"].map(arm_order(shown).index)).sort_values(
        ["_o", "n_labels"])
    fig, ax = plt.subplots(figsize=(7, 4))
    names = [f"{r['arm']}\n{int(r['n_labels'])} labels"
             + (f"\n{r['variant']}" if r.get("variant") else "") for _, r in shown.iterrows()]
    ax.bar(range(len(shown)), shown["agreement"], color=[colors[a] for a in shown["arm"]])
    ax.set_xticks(range(len(shown)), names, fontsize=8)
    ax.set(ylim=(0, 1), ylabel="share of test examples answered alike by every run",
           title="Consistency across seeds (each cell's runs)")
    return _finish(fig, path, legend=False)


def plot_model_scale(scale: pd.DataFrame, metric: str, task: str, path: Path,
                     colors: dict, n_classes: int | None = None) -> str | None:
    """Quality per model (x axis, by parameter count, API models last), one line per arm."""
    if scale["model"].nunique() < 2:
        return (f"model scale: one model ({scale['model'].iloc[0]}); run the arms with other "
                "model= values (e.g. distilgpt2, gpt2, gpt2-medium) to draw it")
    models = scale.drop_duplicates(["model", "dtype"])  # one tick each, in `scale`'s order
    where = {key: i for i, key in enumerate(zip(models["model"], models["dtype"], strict=True))}
    fig, ax = plt.subplots(figsize=(max(7.0, 1.2 * len(models)), 5))
    for arm, cells in scale.groupby("arm", sort=False):
        # a line through the local float32 models; the others hollow points
        line = (cells["dtype"] == REFERENCE_DTYPE) & cells["model_params"].notna()
        for part, style in ((cells[line], {"marker": "o", "label": arm}),
                            (cells[~line], {"marker": "o", "linestyle": "none", "markerfacecolor":
                                            "none", "label": None if line.any() else arm})):
            if not part.empty:
                _quality(ax, [where[k] for k in zip(part["model"], part["dtype"], strict=True)],
                         part, colors[arm], **style)
    ax.set_xticks(range(len(models)), [f"{label(m, d)}\n{params(n)}" for m, d, n in zip(
        models["model"], models["dtype"], models["model_params"], strict=True)])
    ax.set(xlabel="model, by parameter count (API models last; hollow: reduced precision "
                  "or API)", ylabel=metric, title=f"{task}: quality by model size")
    return _finish(fig, path, n_classes)


def plot_cost_vs_volume(costs: pd.DataFrame, crossings: pd.DataFrame, task: str,
                        path: Path, colors: dict) -> str | None:
    """Total cost by the number of predictions, a line per arm, break-even volumes marked."""
    priced = costs[costs["per_call"].notna()]
    if priced.empty:
        return ("cost vs volume: no arm logged a per-call cost (cost/usd_per_1k_predictions); "
                "set a cost profile (conf/cost/) or an API's token prices to draw it")
    crossings = crossings[crossings["break_even_predictions"] < math.inf]  # those that happen
    top = 1e6 if crossings.empty else max(1e6, 10 * crossings["break_even_predictions"].max())
    volumes = np.logspace(0, math.log10(top), 200)
    models = list(dict.fromkeys(zip(priced["model"], priced["dtype"], strict=True)))
    styles = ("-", "--", ":", "-.")
    fig, ax = plt.subplots(figsize=(7, 5))
    for _, row in priced.iterrows():
        style = styles[models.index((row["model"], row["dtype"])) % len(styles)]
        ax.plot(volumes, row["up_front"] + volumes * row["per_call"], color=colors[row["arm"]],
                linestyle=style, label=row["name"])
        if row["per_call_cached"] < row["per_call"]:  # a prefix cache
            ax.plot(volumes, row["up_front_cached"] + volumes * row["per_call_cached"], lw=0.8,
                    color=colors[row["arm"]], linestyle=style, alpha=0.5,
                    label=f"{row['name']}, prefix cache")
    for _, cross in crossings.iterrows():
        v = cross["break_even_predictions"]
        y = cross["up_front_usd"] + v * cross["per_call_usd_fine_tuned"]
        ax.plot([v], [y], "kx")
        ax.annotate(f"{v:,.0f}", (v, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    if (priced["up_front"] + priced["per_call"] > 0).all():
        ax.set_yscale("log")
    ax.set(xlabel="predictions served", ylabel="total USD (training + calls)",
           title=f"{task}: total cost by volume (x: break-even)")
    return _finish(fig, path)


def _quality(ax, x, cells: pd.DataFrame, color: str, **style) -> None:
    """Quality points (or a line) with each cell's 95% interval as error bars."""
    yerr = np.vstack([cells["quality"] - cells["quality_low"],
                      cells["quality_high"] - cells["quality"]])
    ax.errorbar(x, cells["quality"], yerr=yerr, color=color, capsize=3, **style)


def _finish(fig, path: Path, n_classes: int | None = None, legend: bool = True) -> None:
    """Chance (a uniform guess over the classes), the legend, and the file."""
    if n_classes and n_classes >= 2:
        fig.axes[0].axhline(1 / n_classes, label=f"chance (1/{n_classes} classes)",
                            color="black", linestyle=":", lw=1.2)
    if legend:
        fig.axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
