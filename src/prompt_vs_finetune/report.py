"""`pvf-report`: the prompt-vs-fine-tune comparison, computed from the MLflow runs.

Per task it writes a table (markdown + CSV), three plots and a recommendation in plain words.
Quality is the mean over seeds with a 95% Student-t interval (n-1 degrees of freedom); a cell
with one seed has no interval, and the recommendation says when that makes the evidence thin.
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
GROUP = ["task", "model", "arm", "n_labels"]
COLUMNS = {  # report column -> MLflow metric
    "quality": None, "perplexity": "test/perplexity",
    "usd_per_1k": "cost/usd_per_1k_predictions", "train_usd": "cost/train_usd",
    "train_seconds": "cost/train_seconds", "trainable_params": "cost/trainable_params",
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


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per task x model x arm x label budget: means over its runs (seeds; in a
    prompt-sensitivity study also templates and demo orders), CI on quality."""
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
    """True for rows no other row beats on both quality (higher) and cost (lower)."""
    front = []
    for _, p in points.iterrows():
        dominated = ((points["quality"] >= p["quality"]) & (points["usd_per_1k"] <= p["usd_per_1k"])
                     & ((points["quality"] > p["quality"])
                        | (points["usd_per_1k"] < p["usd_per_1k"]))).any()
        front.append(not dominated)
    return pd.Series(front, index=points.index)


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
    rows = []
    for (arm, k), group in runs[runs["arm"].isin(PROMPTING)].groupby(["arm", "n_labels"]):
        by_prompt = group.groupby("prompt")["quality"].mean()
        rows.append({"arm": arm, "n_labels": k, "runs": len(group),
                     "templates": group["prompt"].nunique(),
                     "orders": group["order_seed"].nunique(), "seeds": group["seed"].nunique(),
                     "min": group["quality"].min(), "max": group["quality"].max(),
                     "std": group["quality"].std(ddof=1) if len(group) > 1 else math.nan,
                     "best_template": by_prompt.idxmax(), "worst_template": by_prompt.idxmin(),
                     "template_gap": by_prompt.max() - by_prompt.min()})
    return pd.DataFrame(rows)


# -- words -------------------------------------------------------------------------------
def _fmt(row) -> str:
    ci = "" if math.isnan(row["quality_ci"]) else f" ± {row['quality_ci']:.3f}"
    return f"{row['quality']:.3f}{ci} (n={int(row['runs'])} runs)"


def recommend(table: pd.DataFrame, metric: str) -> list[str]:
    """Plain-words recommendation for one task x model, computed from its table."""
    lines = []
    if table["runs"].max() < 2:
        lines.append(f"Evidence too thin to recommend: every cell has a single run, so no "
                     f"confidence interval. Rerun with seed=0,1,2 (best {metric} so far: "
                     f"{table.loc[table['quality'].idxmax(), 'arm']}).")
        return lines
    prompting = table[table["arm"].isin(PROMPTING)]
    if not prompting.empty:
        best = prompting.loc[prompting["quality"].idxmax()]
        lines.append(f"Best prompting arm: {best['arm']} with {int(best['n_labels'])} "
                     f"demonstration(s), {metric} {_fmt(best)}.")
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
            top = cells.loc[cells["quality"].idxmax()]
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
                         f" of its training cost and {lo['trainable_params']:.3g} vs "
                         f"{f['trainable_params']:.3g} trainable parameters.")
    return lines


# -- plots -------------------------------------------------------------------------------
def plot_quality_vs_cost(table: pd.DataFrame, metric: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 5))
    front = pareto_front(table)
    for arm, group in table.groupby("arm"):
        ax.errorbar(group["usd_per_1k"], group["quality"], yerr=group["quality_ci"].fillna(0),
                    fmt="o", label=arm, capsize=3)
    edge = table[front].sort_values("usd_per_1k")
    ax.plot(edge["usd_per_1k"], edge["quality"], "k--", lw=1, label="Pareto front")
    ax.set_xscale("log")
    ax.set(xlabel="USD per 1,000 predictions (log)", ylabel=metric,
           title=f"Quality vs inference cost (N={int(table['runs'].sum())} runs)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_data_efficiency(table: pd.DataFrame, metric: str, path: Path) -> None:
    """Fine-tuned arms against the label budget, prompting arms as horizontal bands."""
    fig, ax = plt.subplots(figsize=(7, 5))
    for arm in FITTED:
        cells = table[table["arm"] == arm].sort_values("n_labels")
        if not cells.empty:
            ax.errorbar(cells["n_labels"], cells["quality"], yerr=cells["quality_ci"].fillna(0),
                        marker="o", capsize=3, label=arm)
    for arm, color in zip(PROMPTING, ("tab:gray", "tab:green"), strict=True):
        cells = table[table["arm"] == arm]
        if cells.empty:
            continue
        best = cells.loc[cells["quality"].idxmax()]
        ci = 0 if math.isnan(best["quality_ci"]) else best["quality_ci"]
        ax.axhspan(best["quality"] - ci, best["quality"] + ci, color=color, alpha=0.25)
        ax.axhline(best["quality"], color=color, lw=1,
                   label=f"{arm} (k={int(best['n_labels'])})")
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
    prompting = runs[runs["arm"].isin(PROMPTING)]
    fig, ax = plt.subplots(figsize=(7, 4))
    labels, data = [], []
    for (arm, k), group in prompting.groupby(["arm", "n_labels"]):
        labels.append(f"{arm}\nk={k}\n({len(group)} runs)")
        data.append(group["quality"].tolist())
    if data:
        ax.boxplot(data, tick_labels=labels)
    ax.set(ylabel=metric, title="Prompt sensitivity (templates x demo orders x seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- the report --------------------------------------------------------------------------
def write_report(runs: pd.DataFrame, out: Path) -> dict:
    """Write table.csv, report.md, plots and summary.json under `out`; return the summary."""
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    table = summarise(runs)
    table.to_csv(out / "table.csv", index=False)
    summary: dict = {"runs": len(runs), "tasks": {}}
    md = ["# prompt vs fine-tune: report", "",
          f"{len(runs)} finished runs. Quality: mean over a cell's runs (its seeds, and any "
          "templates and demo orders) ± half-width of the 95% Student-t interval. Cost per 1k "
          "predictions: scoring wall time x hardware price.", ""]
    for (task, model), cells in table.groupby(["task", "model"]):
        kind = cells["kind"].iloc[0]
        metric = QUALITY[kind].removeprefix("test/")
        stem = f"{task}_{model}"
        task_runs = runs[(runs["task"] == task) & (runs["model"] == model)]
        plot_quality_vs_cost(cells, metric, plots / f"{stem}_quality_vs_cost.png")
        plot_data_efficiency(cells, metric, plots / f"{stem}_data_efficiency.png")
        plot_prompt_sensitivity(task_runs, metric, plots / f"{stem}_prompt_sensitivity.png")
        advice = recommend(cells, metric)
        shown = cells.assign(pareto=pareto_front(cells))
        spread = sensitivity(task_runs)
        md += [f"## {task} / {model}", "", _markdown(shown, metric), "", "**Recommendation**",
               "", *[f"- {line}" for line in advice], "",
               *(_sensitivity_markdown(spread, metric) if len(task_runs) > len(cells) else []),
               f"![quality vs cost](plots/{stem}_quality_vs_cost.png) "
               f"![data efficiency](plots/{stem}_data_efficiency.png) "
               f"![prompt sensitivity](plots/{stem}_prompt_sensitivity.png)", ""]
        summary["tasks"][f"{task}/{model}"] = {
            "metric": metric,
            "best": {arm: round(float(g["quality"].max()), 4) for arm, g in cells.groupby("arm")},
        }
        (out / f"recommendation_{stem}.txt").write_text("\n".join(advice) + "\n")
    (out / "report.md").write_text("\n".join(md))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _markdown(table: pd.DataFrame, metric: str) -> str:
    head = (f"| arm | N labels | runs | {metric} | perplexity | USD / 1k pred. | train USD | "
            "trainable params | Pareto |")
    lines = [head, "|" + "---|" * 9]
    for _, r in table.sort_values(["arm", "n_labels"]).iterrows():
        ci = "" if math.isnan(r["quality_ci"]) else f" ± {r['quality_ci']:.3f}"
        lines.append(f"| {r['arm']} | {int(r['n_labels'])} | {int(r['runs'])} | "
                     f"{r['quality']:.3f}{ci} | {r['perplexity']:.3g} | {r['usd_per_1k']:.3g} | "
                     f"{r['train_usd']:.3g} | {r['trainable_params']:.3g} | "
                     f"{'yes' if r['pareto'] else ''} |")
    return "\n".join(lines)


def _sensitivity_markdown(spread: pd.DataFrame, metric: str) -> list[str]:
    """The prompt-sensitivity table, shown when a cell pools runs beyond its seeds."""
    lines = ["**Prompt sensitivity** (every run of the prompting arms: templates x demo orders x "
             f"seeds; {metric})", "",
             "| arm | k | runs | templates | orders | seeds | min | max | std | best template "
             "| worst template | gap between template means |", "|" + "---|" * 12]
    for _, r in spread.iterrows():
        lines.append(f"| {r['arm']} | {int(r['n_labels'])} | {r['runs']} | {r['templates']} | "
                     f"{r['orders']} | {r['seeds']} | {r['min']:.3f} | {r['max']:.3f} | "
                     f"{r['std']:.3f} | {r['best_template']} | {r['worst_template']} | "
                     f"{r['template_gap']:.3f} |")
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
