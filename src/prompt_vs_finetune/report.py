"""`pvf-report`: the prompt-vs-fine-tune comparison, computed from the MLflow runs.

Per task it writes a table (markdown + CSV), three plots and a recommendation in plain words.
Quality is the mean over seeds with a 95% Student-t interval (n-1 degrees of freedom); a cell
with one seed has no interval, and the recommendation says when that makes the evidence thin.

Runs scored at reduced precision (MLflow tag `inference_dtype`; untagged runs are float32) are
cells of their own, compared with float32 in a precision table. A task with runs of several
models also gets a model-scale table and plot, models ordered by parameter count. Metrics a
run did not log (an API model's perplexity) read "n/a" in the tables and null in summary.json.
"""

import argparse
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from scipy import stats  # noqa: E402

from .tracking import use_experiment  # noqa: E402

PROMPTING = ("zero_shot", "few_shot")
FITTED = ("full_finetune", "lora")
QUALITY = {"classification": "test/accuracy", "generation": "test/rougeL"}
GROUP = ["task", "model", "dtype", "arm", "n_labels"]
REFERENCE_DTYPE = "float32"  # runs without the inference_dtype tag
DTYPES = ("float32", "bfloat16", "float16", "int8")  # display order; others after these
COLUMNS = {  # report column -> MLflow metric
    "quality": None, "perplexity": "test/perplexity",
    "usd_per_1k": "cost/usd_per_1k_predictions", "train_usd": "cost/train_usd",
    "train_seconds": "cost/train_seconds", "trainable_params": "cost/trainable_params",
    "total_params": "cost/total_params",
    "unparsed_rate": "test/unparsed_rate",  # API models: replies that matched no label
}


# -- loading -----------------------------------------------------------------------------
def run_ids_from(results: Path) -> set[str]:
    """Run ids recorded by `pvf results_file=...` under a folder (the DVC run stage's outputs)."""
    return {json.loads(path.read_text())["run_id"] for path in results.rglob("metrics.json")}


def load_runs(tracking_uri: str, experiments: list[str] | None = None,
              filter_string: str = "", run_ids: set[str] | None = None) -> pd.DataFrame:
    """One row per FINISHED job run: tags, label budget, quality and cost metrics.
    `run_ids` keeps exactly those runs (stale runs of earlier studies stay out)."""
    client = MlflowClient(tracking_uri)
    found = client.search_experiments()
    ids = [e.experiment_id for e in found if not experiments or e.name in experiments]
    if not ids:
        return pd.DataFrame()
    status = "attributes.status = 'FINISHED'"
    query = f"{status} and {filter_string}" if filter_string else status
    rows = []
    for run in client.search_runs(ids, query, max_results=50000):
        tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
        if "arm" not in tags or tags.get("pvf_summary") == "true":
            continue
        if run_ids is not None and run.info.run_id not in run_ids:
            continue
        kind = "generation" if "test/rougeL" in metrics else "classification"
        row = {"run_id": run.info.run_id, "task": tags["task"], "model": tags["model"],
               "dtype": tags.get("inference_dtype") or REFERENCE_DTYPE,
               "arm": tags["arm"], "seed": tags.get("seed"), "kind": kind,
               "prompt": tags.get("prompt") or params.get("task.prompt", ""),
               "template": params.get("task.template", ""),
               "order_seed": params.get("arm.order_seed", ""),
               "n_labels": n_labels(tags["arm"], metrics),
               "quality": metrics.get(QUALITY[kind], math.nan)}
        for column, key in COLUMNS.items():
            if key:
                row[column] = metrics.get(key, math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def n_labels(arm: str, metrics: dict) -> int:
    """Labelled examples an arm used: training examples if it trains, its demos if it prompts."""
    if arm in FITTED:
        return int(metrics.get("data/n_train", 0))
    return int(metrics.get("fewshot/demos_used", 0))


# -- statistics --------------------------------------------------------------------------
def mean_ci(values) -> tuple[float, float, int]:
    """(mean, half-width of the 95% t-interval, n); the half-width is NaN for n < 2."""
    values = [float(v) for v in values if not math.isnan(float(v))]
    n = len(values)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan, n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n), n


def _complete(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs with every column the report reads (frames built by hand may lack the newer ones)."""
    if "dtype" not in runs:
        runs = runs.assign(dtype=REFERENCE_DTYPE)
    missing = {c: math.nan for c in COLUMNS if c not in runs}
    return runs.assign(**missing) if missing else runs


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per task x model x inference dtype x arm x label budget: means over its runs
    (seeds; in a prompt-sensitivity study also templates and demo orders), CI on quality.
    A metric no run of a cell logged stays NaN (shown as n/a)."""
    runs = _complete(runs)
    rows = []
    for key, group in runs.groupby(GROUP, sort=True):
        mean, ci, n = mean_ci(group["quality"])
        row = dict(zip(GROUP, key, strict=True))
        row.update(kind=group["kind"].iloc[0], runs=n, quality=mean, quality_ci=ci)
        for column in COLUMNS:
            if column != "quality":
                row[column] = group[column].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def pareto_front(points: pd.DataFrame) -> pd.Series:
    """True for rows no other row beats on both quality (higher) and cost (lower). A row
    without a quality or a cost is never on the front."""
    front = []
    for _, p in points.iterrows():
        if math.isnan(p["quality"]) or math.isnan(p["usd_per_1k"]):
            front.append(False)
            continue
        dominated = ((points["quality"] >= p["quality"]) & (points["usd_per_1k"] <= p["usd_per_1k"])
                     & ((points["quality"] > p["quality"])
                        | (points["usd_per_1k"] < p["usd_per_1k"]))).any()
        front.append(not dominated)
    return pd.Series(front, index=points.index, dtype=bool)


def _best(cells: pd.DataFrame):
    """The row of highest quality (NaN quality ignored), or None."""
    scored = cells[cells["quality"].notna()]
    return None if scored.empty else scored.loc[scored["quality"].idxmax()]


def _dtype_rank(dtype: str) -> int:
    return DTYPES.index(dtype) if dtype in DTYPES else len(DTYPES)


def _dtypes(table: pd.DataFrame) -> list[str]:
    """The inference dtypes in a table, float32 first."""
    if "dtype" not in table:
        return [REFERENCE_DTYPE]
    return sorted(table["dtype"].unique(), key=lambda d: (_dtype_rank(d), d))


def _reduced(table: pd.DataFrame) -> bool:
    """Whether any cell was scored at a precision other than float32."""
    return "dtype" in table and bool((table["dtype"] != REFERENCE_DTYPE).any())


def _reference(table: pd.DataFrame) -> pd.DataFrame:
    """The float32 cells, or, with none, the cells of the first dtype present."""
    return table[table["dtype"] == _dtypes(table)[0]] if "dtype" in table else table


def precision_effect(table: pd.DataFrame) -> pd.DataFrame:
    """Each reduced-precision cell beside its float32 twin (same task, model, arm and label
    budget): quality change, whether it is beyond both 95% intervals, cost change."""
    reference = table[table["dtype"] == REFERENCE_DTYPE].set_index(
        ["task", "model", "arm", "n_labels"])
    rows = []
    for _, r in table[table["dtype"] != REFERENCE_DTYPE].iterrows():
        key = (r["task"], r["model"], r["arm"], r["n_labels"])
        if key not in reference.index:
            continue
        ref = reference.loc[key]
        delta = r["quality"] - ref["quality"]
        margin = r["quality_ci"] + ref["quality_ci"]  # NaN with a single seed on either side
        rows.append({"task": r["task"], "model": r["model"], "arm": r["arm"],
                     "n_labels": r["n_labels"], "dtype": r["dtype"],
                     "quality_ref": ref["quality"], "quality_ci_ref": ref["quality_ci"],
                     "quality": r["quality"], "quality_ci": r["quality_ci"], "delta": delta,
                     "clear": bool(not math.isnan(margin) and abs(delta) > margin),
                     "perplexity_ref": ref["perplexity"], "perplexity": r["perplexity"],
                     "usd_per_1k_ref": ref["usd_per_1k"], "usd_per_1k": r["usd_per_1k"]})
    return pd.DataFrame(rows)


def model_scale(table: pd.DataFrame) -> pd.DataFrame:
    """One task's cells across models: one row per model x dtype x arm, each arm at its largest
    label budget, ordered by the model's parameter count (`cost/total_params`); models that log
    none (API models) come last, by name."""
    rows = [group.loc[group["n_labels"].idxmax()]
            for _, group in table.groupby(["model", "dtype", "arm"], sort=False)]
    cells = pd.DataFrame(rows).reset_index(drop=True)
    params = table.groupby("model")["total_params"].min()  # NaN when the model logs none
    arms = [*PROMPTING, *FITTED]
    cells = cells.assign(
        model_params=cells["model"].map(params),
        _api=cells["model"].map(params).isna(),
        _dtype=cells["dtype"].map(_dtype_rank),
        _arm=cells["arm"].map(lambda a: arms.index(a) if a in arms else len(arms)))
    cells = cells.sort_values(["_api", "model_params", "model", "_dtype", "dtype", "_arm", "arm"])
    return cells.drop(columns=["_api", "_dtype", "_arm"]).reset_index(drop=True)


def crossover(table: pd.DataFrame, arm: str) -> dict | None:
    """The smallest label budget at which `arm` beats the best prompting cell beyond both CIs.

    Returns {"n_labels", "prompt": best prompting row, "fitted": that row} or None when the
    arm never clearly wins (or either side has no interval).
    """
    prompting = table[table["arm"].isin(PROMPTING)]
    fitted = table[table["arm"] == arm].sort_values("n_labels")
    if prompting.empty or fitted.empty:
        return None
    best = prompting.loc[prompting["quality"].idxmax()]
    for _, row in fitted.iterrows():
        if row["quality"] - row["quality_ci"] > best["quality"] + best["quality_ci"]:
            return {"n_labels": int(row["n_labels"]), "prompt": best, "fitted": row}
    return None


def sensitivity(runs: pd.DataFrame) -> pd.DataFrame:
    """Spread of the prompting arms' quality over templates, demo orders and seeds, per arm
    and k: range, standard deviation, and the mean of each template (best and worst)."""
    runs = _complete(runs)
    rows = []
    prompting = runs[runs["arm"].isin(PROMPTING)]
    for (dtype, arm, k), group in prompting.groupby(["dtype", "arm", "n_labels"]):
        by_prompt = group.groupby("prompt")["quality"].mean().dropna()
        scored = not by_prompt.empty  # False when no run logged the quality metric
        rows.append({"dtype": dtype, "arm": arm, "n_labels": k, "runs": len(group),
                     "templates": group["prompt"].nunique(),
                     "orders": group["order_seed"].nunique(), "seeds": group["seed"].nunique(),
                     "min": group["quality"].min(), "max": group["quality"].max(),
                     "std": group["quality"].std(ddof=1) if len(group) > 1 else math.nan,
                     "best_template": by_prompt.idxmax() if scored else "n/a",
                     "worst_template": by_prompt.idxmin() if scored else "n/a",
                     "template_gap": by_prompt.max() - by_prompt.min() if scored else math.nan})
    return pd.DataFrame(rows)


# -- words -------------------------------------------------------------------------------
def _num(value, spec: str = ".3g") -> str:
    """A number for a table; "n/a" when the runs did not log it (NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, spec)


def _quality(row) -> str:
    """Mean ± CI half-width; "n/a" when no run logged the quality metric."""
    if math.isnan(row["quality"]):
        return "n/a"
    ci = "" if math.isnan(row["quality_ci"]) else f" ± {row['quality_ci']:.3f}"
    return f"{row['quality']:.3f}{ci}"


def _fmt(row) -> str:
    return f"{_quality(row)} (n={int(row['runs'])} runs)"


def _params(n) -> str:
    """A parameter count in words: 82M, 1.56B; "n/a" when not logged (API models)."""
    if n is None or math.isnan(n):
        return "n/a"
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def _label(model_or_arm: str, dtype: str) -> str:
    """A model or arm name, with its dtype unless float32."""
    return model_or_arm if dtype == REFERENCE_DTYPE else f"{model_or_arm} ({dtype})"


def recommend(table: pd.DataFrame, metric: str, prompting_only_note: bool = True) -> list[str]:
    """Plain-words recommendation for one task x model (at one precision), from its table.
    With only prompting arms (an API model) it says so, unless `prompting_only_note` is off."""
    lines = []
    top = _best(table)
    if top is None:
        return [f"No run logged {metric}: nothing to recommend."]
    if table["runs"].max() < 2:
        lines.append(f"Evidence too thin to recommend: every cell has a single run, so no "
                     f"confidence interval. Rerun with seed=0,1,2 (best {metric} so far: "
                     f"{top['arm']}).")
        return lines
    prompting = table[table["arm"].isin(PROMPTING)]
    best = _best(prompting)
    if best is not None:
        unparsed = best.get("unparsed_rate", math.nan)
        note = ("" if unparsed is None or math.isnan(unparsed) or unparsed == 0
                else f"; {unparsed:.1%} of its replies matched no label")
        lines.append(f"Best prompting arm: {best['arm']} with {int(best['n_labels'])} "
                     f"demonstration(s), {metric} {_fmt(best)}{note}.")
    if prompting_only_note and not table["arm"].isin(FITTED).any():
        lines.append("Only the prompting arms ran for this model (API models are not "
                     "fine-tuned here): no fine-tuned arm of it to compare with.")
    prompting = prompting[prompting["quality"].notna()]
    for arm in FITTED:
        cells = table[table["arm"] == arm]
        if cells.empty or prompting.empty:
            continue
        found = crossover(table, arm)
        if found:
            smaller = cells[cells["n_labels"] < found["n_labels"]]
            below = (f" With fewer labels ({', '.join(str(int(n)) for n in smaller['n_labels'])})"
                     " it does not clearly beat prompting." if not smaller.empty else "")
            lines.append(f"Fine-tune ({arm}) once you have about {found['n_labels']} labelled "
                         f"examples: {metric} {_fmt(found['fitted'])} vs prompting "
                         f"{_fmt(found['prompt'])}.{below}")
        else:
            top = _best(cells)
            if top is None:
                continue
            lines.append(f"{arm} never beat the best prompt beyond the 95% intervals (its best: "
                         f"{_fmt(top)} at {int(top['n_labels'])} labels): prompt, or collect "
                         "more labels and seeds.")
    full, lora = table[table["arm"] == "full_finetune"], table[table["arm"] == "lora"]
    if not full.empty and not lora.empty:
        n = min(full["n_labels"].max(), lora["n_labels"].max())
        f = full[full["n_labels"] == n].iloc[0] if (full["n_labels"] == n).any() else None
        lo = lora[lora["n_labels"] == n].iloc[0] if (lora["n_labels"] == n).any() else None
        if f is not None and lo is not None and f["train_usd"] > 0:
            lines.append(f"At {int(n)} labels LoRA reaches {metric} {_fmt(lo)} vs full "
                         f"fine-tuning {_fmt(f)}, at {100 * lo['train_usd'] / f['train_usd']:.0f}%"
                         f" of its training cost and {_num(lo['trainable_params'])} vs "
                         f"{_num(f['trainable_params'])} trainable parameters.")
    return lines


def recommend_precision(effect: pd.DataFrame, metric: str) -> list[str]:
    """One line per reduced dtype: its quality change against float32, and its cost."""
    lines = []
    if effect.empty:  # no reduced-precision cell has a float32 twin
        return lines
    for dtype, rows in effect.groupby("dtype", sort=False):
        rows = rows[rows["delta"].notna()]
        if rows.empty:
            continue
        worst = rows.loc[rows["delta"].idxmin()]
        clear = int(rows["clear"].sum())
        cost = rows[(rows["usd_per_1k_ref"] > 0) & rows["usd_per_1k"].notna()]
        ratio = ((cost["usd_per_1k"] / cost["usd_per_1k_ref"]).mean() if not cost.empty
                 else math.nan)
        lines.append(
            f"{dtype} vs float32: {metric} changes by {rows['delta'].mean():+.3f} on average over "
            f"{len(rows)} cell(s) (largest drop {worst['delta']:+.3f}, {worst['arm']} at "
            f"{int(worst['n_labels'])} labels); {clear} of {len(rows)} beyond both 95% intervals"
            + ("" if math.isnan(ratio) else f"; {100 * ratio:.0f}% of the float32 inference cost")
            + ".")
    return lines


def advise(cells: pd.DataFrame, metric: str) -> list[str]:
    """The recommendation for one task x model section: per dtype when there are several
    (prefixed with the dtype), then the precision comparison."""
    dtypes = _dtypes(cells)
    if len(dtypes) == 1:
        return recommend(cells, metric)
    note = not cells["arm"].isin(FITTED).any()  # not for a dtype only prompting ran at
    lines = [f"[{dtype}] {line}" for dtype in dtypes
             for line in recommend(cells[cells["dtype"] == dtype], metric, note)]
    return lines + recommend_precision(precision_effect(cells), metric)


def recommend_scale(scale: pd.DataFrame, metric: str) -> list[str]:
    """The best cell across models, and the smallest model whose best cell is not clearly
    worse (95% intervals overlap)."""
    scored = scale[scale["quality"].notna()]
    if scored.empty:
        return []
    top = scored.loc[scored["quality"].idxmax()]
    floor = top["quality"] - (0 if math.isnan(top["quality_ci"]) else top["quality_ci"])
    close = scored[scored["quality"] + scored["quality_ci"].fillna(0) >= floor]
    small = close.iloc[0]  # `scale` is in parameter order, API models last

    def cell(r) -> str:
        return (f"{_label(r['model'], r['dtype'])} ({_params(r['model_params'])}) {r['arm']}, "
                f"{metric} {_fmt(r)}, USD {_num(r['usd_per_1k'])} per 1k predictions")

    lines = [f"Best across models: {cell(top)}."]
    if small["model"] != top["model"] or small["dtype"] != top["dtype"]:
        lines.append(f"Smallest model not clearly worse (95% intervals overlap): {cell(small)}.")
    return lines


# -- plots -------------------------------------------------------------------------------
def plot_quality_vs_cost(table: pd.DataFrame, metric: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 5))
    front = pareto_front(table)
    for (arm, dtype), group in table.groupby(["arm", "dtype"]):
        ax.errorbar(group["usd_per_1k"], group["quality"], yerr=group["quality_ci"].fillna(0),
                    fmt="o", label=_label(arm, dtype), capsize=3)
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
    for dtype in _dtypes(table):
        cells_of = table[table["dtype"] == dtype]
        style = "-" if dtype == REFERENCE_DTYPE else "--"
        for arm in FITTED:
            cells = cells_of[cells_of["arm"] == arm].sort_values("n_labels")
            if not cells.empty:
                ax.errorbar(cells["n_labels"], cells["quality"],
                            yerr=cells["quality_ci"].fillna(0), marker="o", capsize=3,
                            linestyle=style, label=_label(arm, dtype))
        for arm, color in zip(PROMPTING, ("tab:gray", "tab:green"), strict=True):
            best = _best(cells_of[cells_of["arm"] == arm])
            if best is None:
                continue
            if dtype == REFERENCE_DTYPE:
                ci = 0 if math.isnan(best["quality_ci"]) else best["quality_ci"]
                ax.axhspan(best["quality"] - ci, best["quality"] + ci, color=color, alpha=0.25)
            ax.axhline(best["quality"], color=color, lw=1, linestyle=style,
                       label=f"{_label(arm, dtype)} (k={int(best['n_labels'])})")
    budgets = sorted(table.loc[table["arm"].isin(FITTED), "n_labels"].unique())
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
    runs = _complete(runs)
    prompting = runs[runs["arm"].isin(PROMPTING)]
    fig, ax = plt.subplots(figsize=(7, 4))
    labels, data = [], []
    for (dtype, arm, k), group in prompting.groupby(["dtype", "arm", "n_labels"]):
        labels.append(f"{_label(arm, dtype)}\nk={k}\n({len(group)} runs)")
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
    params = dict(zip(zip(scale["model"], scale["dtype"], strict=True), scale["model_params"],
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
    ax.set_xticks(range(len(keys)), [f"{_label(m, d)}\n{_params(params[(m, d)])}"
                                      for m, d in keys])
    ax.set(xlabel="model, by parameter count (API models last; hollow: reduced precision "
                  "or API)", ylabel=metric,
           title=f"{task}: quality by model size")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- the report --------------------------------------------------------------------------
def write_report(runs: pd.DataFrame, out: Path) -> dict:
    """Write table.csv, report.md, plots and summary.json under `out`; return the summary."""
    runs = _complete(runs)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    table = summarise(runs)
    table.to_csv(out / "table.csv", index=False)
    summary: dict = {"runs": len(runs), "tasks": {}}
    md = ["# prompt vs fine-tune: report", "",
          f"{len(runs)} finished runs. Quality: mean over a cell's runs (its seeds, and any "
          "templates and demo orders) ± half-width of the 95% Student-t interval. Cost per 1k "
          "predictions: scoring wall time x hardware price.", ""]
    if _reduced(table):
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
            effect = precision_effect(cells) if _reduced(cells) else pd.DataFrame()
            md += [f"## {task} / {model}", "", _markdown(shown, metric), "",
                   *(_precision_markdown(effect, metric) if not effect.empty else []),
                   "**Recommendation**", "", *[f"- {line}" for line in advice], "",
                   *(_sensitivity_markdown(spread, metric) if len(task_runs) > len(cells)
                     else []),
                   f"![quality vs cost](plots/{stem}_quality_vs_cost.png) "
                   f"![data efficiency](plots/{stem}_data_efficiency.png) "
                   f"![prompt sensitivity](plots/{stem}_prompt_sensitivity.png)", ""]
            summary["tasks"][f"{task}/{model}"] = _summary_cells(cells, metric)
            (out / f"recommendation_{stem}.txt").write_text("\n".join(advice) + "\n")
        if task_cells["model"].nunique() > 1:
            metric = QUALITY[task_cells["kind"].iloc[0]].removeprefix("test/")
            scale = model_scale(task_cells)
            plot_model_scale(scale, metric, task, plots / f"{task}_model_scale.png")
            advice = recommend_scale(scale, metric)
            md += [f"## {task}: model scale", "", *_scale_markdown(scale, metric),
                   "**Recommendation**", "", *[f"- {line}" for line in advice], "",
                   f"![model scale](plots/{task}_model_scale.png)", ""]
            summary.setdefault("model_scale", {})[task] = {
                "metric": metric,
                "cells": [{"model": r["model"], "dtype": r["dtype"], "arm": r["arm"],
                           "n_labels": int(r["n_labels"]), "total_params": r["model_params"],
                           "runs": int(r["runs"]), "quality": r["quality"],
                           "quality_ci": r["quality_ci"], "perplexity": r["perplexity"],
                           "unparsed_rate": r["unparsed_rate"], "usd_per_1k": r["usd_per_1k"]}
                          for _, r in scale.iterrows()]}
            (out / f"recommendation_{task}_model_scale.txt").write_text("\n".join(advice) + "\n")
    (out / "report.md").write_text("\n".join(md))
    summary = _json_safe(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
    return summary


def _summary_cells(cells: pd.DataFrame, metric: str) -> dict:
    """summary.json for one task x model: best quality per arm (float32 cells; per dtype too
    when some are not), and the unparsed rate per arm where runs logged one."""
    def best(rows: pd.DataFrame) -> dict:
        return {arm: round(float(g["quality"].max()), 4) for arm, g in rows.groupby("arm")}

    entry: dict = {"metric": metric, "best": best(_reference(cells))}
    if _reduced(cells):
        entry["best_by_dtype"] = {dtype: best(cells[cells["dtype"] == dtype])
                                  for dtype in _dtypes(cells)}
    if cells["unparsed_rate"].notna().any():
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


def _markdown(table: pd.DataFrame, metric: str) -> str:
    """The cells of one task x model. A dtype column only when some cell is not float32, an
    unparsed-reply column only when some run logged one (API models)."""
    dtype, unparsed = _reduced(table), bool(table["unparsed_rate"].notna().any())
    head = ["arm", *(["dtype"] if dtype else []), "N labels", "runs", metric, "perplexity",
            *(["unparsed replies"] if unparsed else []), "USD / 1k pred.", "train USD",
            "trainable params", "Pareto"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ordered = table.assign(_dtype=table["dtype"].map(_dtype_rank))
    for _, r in ordered.sort_values(["arm", "n_labels", "_dtype", "dtype"]).iterrows():
        cells = [r["arm"], *([r["dtype"]] if dtype else []), str(int(r["n_labels"])),
                 str(int(r["runs"])), _quality(r), _num(r["perplexity"]),
                 *([_num(r["unparsed_rate"], ".1%")] if unparsed else []),
                 _num(r["usd_per_1k"]), _num(r["train_usd"]), _num(r["trainable_params"]),
                 "yes" if r["pareto"] else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _precision_markdown(effect: pd.DataFrame, metric: str) -> list[str]:
    """Reduced-precision cells beside their float32 twins."""
    lines = [f"**Precision** ({metric} of each reduced-precision cell against the same cell at "
             "float32)", "",
             f"| arm | N labels | dtype | {metric} float32 | {metric} | change | beyond 95% "
             "intervals | perplexity float32 → dtype | USD / 1k pred. float32 → dtype |",
             "|" + "---|" * 9]
    for _, r in effect.iterrows():
        ref = {"quality": r["quality_ref"], "quality_ci": r["quality_ci_ref"]}
        lines.append(f"| {r['arm']} | {int(r['n_labels'])} | {r['dtype']} | {_quality(ref)} | "
                     f"{_quality(r)} | {_num(r['delta'], '+.3f')} | "
                     f"{'yes' if r['clear'] else ''} | {_num(r['perplexity_ref'])} → "
                     f"{_num(r['perplexity'])} | {_num(r['usd_per_1k_ref'])} → "
                     f"{_num(r['usd_per_1k'])} |")
    return [*lines, ""]


def _scale_markdown(scale: pd.DataFrame, metric: str) -> list[str]:
    """One task's quality per model x arm, models by parameter count, API models last."""
    arms = list(dict.fromkeys(scale["arm"]))
    arms = [a for a in (*PROMPTING, *FITTED) if a in arms] + [a for a in arms
                                                              if a not in (*PROMPTING, *FITTED)]
    lines = [f"**Model scale** ({metric} ± 95% interval, [USD per 1k predictions]; each arm at "
             "its largest label budget; models by parameter count, those without one (API "
             "models) last; — : not run)", "",
             "| model | params | " + " | ".join(arms) + " |", "|" + "---|" * (2 + len(arms))]
    for (model, dtype), rows in scale.groupby(["model", "dtype"], sort=False):
        by_arm = rows.set_index("arm")
        cells = [f"{_quality(by_arm.loc[a])} [{_num(by_arm.loc[a, 'usd_per_1k'])}]"
                 if a in by_arm.index else "—" for a in arms]
        lines.append(f"| {_label(model, dtype)} | {_params(rows['model_params'].iloc[0])} | "
                     + " | ".join(cells) + " |")
    return [*lines, ""]


def _sensitivity_markdown(spread: pd.DataFrame, metric: str) -> list[str]:
    """The prompt-sensitivity table, shown when a cell pools runs beyond its seeds."""
    dtype = _reduced(spread)
    lines = ["**Prompt sensitivity** (every run of the prompting arms: templates x demo orders x "
             f"seeds; {metric})", "",
             f"| arm | {'dtype | ' if dtype else ''}k | runs | templates | orders | seeds | min "
             "| max | std | best template | worst template | gap between template means |",
             "|" + "---|" * (13 if dtype else 12)]
    for _, r in spread.iterrows():
        lines.append(f"| {r['arm']} | {r['dtype'] + ' | ' if dtype else ''}"
                     f"{int(r['n_labels'])} | {r['runs']} | {r['templates']} | "
                     f"{r['orders']} | {r['seeds']} | {_num(r['min'], '.3f')} | "
                     f"{_num(r['max'], '.3f')} | {_num(r['std'], '.3f')} | "
                     f"{r['best_template']} | {r['worst_template']} | "
                     f"{_num(r['template_gap'], '.3f')} |")
    return [*lines, ""]


def log_summary_run(tracking_uri: str, out: Path, summary: dict) -> str:
    """The report's files as artifacts of one `report` run, so the dashboard has them too."""
    use_experiment(tracking_uri, "pvf-report")
    with mlflow.start_run(run_name="report", tags={"pvf_summary": "true"}) as run:
        mlflow.log_param("runs", summary["runs"])
        mlflow.log_artifacts(str(out))
    return run.info.run_id


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pvf-report", description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    parser.add_argument("--experiment", action="append", help="experiment (task) name; repeat")
    parser.add_argument("--filter", default="", help="MLflow filter, e.g. \"tags.model = 'gpt2'\"")
    parser.add_argument("--runs-from", type=Path, default=None,
                        help="only the runs recorded in metrics.json files under this folder")
    parser.add_argument("--out", default="reports", type=Path, help="output folder")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log a summary run")
    args = parser.parse_args(argv)
    import os

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    run_ids = run_ids_from(args.runs_from) if args.runs_from else None
    runs = load_runs(uri, args.experiment, args.filter, run_ids)
    if runs.empty:
        raise SystemExit(f"error: no finished pvf runs in {uri}; run pvf first or fix --experiment")
    summary = write_report(runs, args.out)
    if not args.no_mlflow:
        log_summary_run(uri, args.out, summary)
    print((args.out / "report.md").read_text())
