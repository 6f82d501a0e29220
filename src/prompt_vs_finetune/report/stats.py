"""The report's statistics: cells (runs of one config that differ only in their seeds, on
one test set), their means and 95% intervals, paired comparisons, the Pareto front, the
fine-tuning crossover, prompt sensitivity, and the precision and model-scale comparisons.
Whether an arm trains is the runs' `fit` column, never its name.

Intervals (intervals.py) resample the test examples and the seeds; runs without per-example
values fall back to a t-interval over seeds (`interval` says which).
"""

import math

import numpy as np
import pandas as pd
from scipy import stats

from .intervals import bootstrap_interval, compare
from .load import COLUMNS, REFERENCE_DTYPE

GROUP = ["task", "model", "dtype", "arm", "fit", "n_labels"]
DTYPES = ("float32", "bfloat16", "float16", "int8")  # display order; others after these


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


def complete(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs with every column the report reads (frames built by hand may lack the newer ones)."""
    if "dtype" not in runs:
        runs = runs.assign(dtype=REFERENCE_DTYPE)
    defaults = {"hpo_trial": False, "test_set": "", "params": [{}] * len(runs),
                "chat": "false", "calibration": "", "pretrained": True,
                "predictions": [None] * len(runs),
                "cell": runs[[*GROUP]].astype(str).agg("|".join, axis=1) if len(runs) else []}
    runs = runs.assign(**{k: v for k, v in defaults.items() if k not in runs})
    missing = {c: math.nan for c in COLUMNS if c not in runs}
    return runs.assign(**missing) if missing else runs


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (an experiment: runs that differ only in their seeds, on one test
    set): quality mean and 95% interval, and the cell's mean cost. Search trials
    (`hpo_trial`) are left out. `examples` holds the cell's [seeds x test examples] quality
    matrix when its runs logged one. `variant` names what sets a cell apart from the others
    of its arm and label budget (a template, a scorer option, ...)."""
    runs = complete(runs)
    runs = runs[~runs["hpo_trial"].astype(bool)]
    rows = []
    for cell, group in runs.groupby("cell", sort=True):
        row = {key: group[key].iloc[0] for key in GROUP}
        row.update(cell=cell, metric=group["metric"].iloc[0], test_set=group["test_set"].iloc[0],
                   runs=int(group["quality"].notna().sum()),
                   pretrained=bool(group["pretrained"].all()))
        matrix = _matrix(group)
        if matrix is not None:
            mean, low, high = bootstrap_interval(matrix)
            interval = "bootstrap"
        else:
            mean, half, _ = mean_ci(group["quality"])
            low, high, interval = mean - half, mean + half, "t over seeds"
        row.update(quality=mean, quality_low=low, quality_high=high,
                   quality_ci=(high - low) / 2, interval=interval, examples=matrix,
                   agreement=agreement(list(group["predictions"])))
        for column in COLUMNS:
            if column != "quality":
                row[column] = group[column].mean()
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.assign(variant=variants(table, runs))


def agreement(predictions) -> float:
    """The share of test examples with the same prediction in every run ("will it answer the
    same way tomorrow?"); NaN with fewer than two runs that logged predictions of one test
    set."""
    logged = [p for p in predictions if p is not None]
    if len(logged) < 2 or len(logged) != len(predictions) or len({len(p) for p in logged}) != 1:
        return math.nan
    return sum(len(set(map(str, each))) == 1 for each in zip(*logged, strict=True)) / len(logged[0])


def _matrix(group: pd.DataFrame) -> np.ndarray | None:
    """[runs x test examples] of a cell, when every run logged equally long per-example
    values (the same test set)."""
    if "examples" not in group:
        return None
    values = [v for v in group["examples"] if v is not None]
    if len(values) != len(group) or len({len(v) for v in values}) != 1 or not len(values[0]):
        return None
    return np.vstack(values)


def variants(table: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    """For cells that share task, model, dtype, arm and label budget: the config values that
    differ among them (`key=value, ...`); empty where a cell is the only one. A value its own
    runs disagree on (a per-run output folder, say) is not what sets a cell apart."""
    params = runs.groupby("cell")["params"].agg(_shared_items)
    labels = pd.Series("", index=table.index)
    for _, same in table.groupby(GROUP).groups.items():
        if len(same) < 2:
            continue
        dicts = {i: params[table.loc[i, "cell"]] for i in same}
        keys = sorted({k for d in dicts.values() for k in d
                       if len({d.get(k) for d in dicts.values()}) > 1})
        for i, d in dicts.items():
            labels[i] = ", ".join(f"{k}={d.get(k)}" for k in keys)
            if not labels[i] and table.loc[i, "test_set"]:
                labels[i] = f"test set {table.loc[i, 'test_set'][:8]}"
    return labels


def _shared_items(dicts: pd.Series) -> dict:
    """The params every run of a cell logged with the same value."""
    first, *rest = list(dicts)
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in rest)}


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


def prompting(table: pd.DataFrame) -> pd.DataFrame:
    """The cells (or runs) of arms that only prompt."""
    return table[~table["fit"].astype(bool)]


def fitted(table: pd.DataFrame) -> pd.DataFrame:
    """The cells (or runs) of arms that train weights."""
    return table[table["fit"].astype(bool)]


def arm_order(table: pd.DataFrame) -> list[str]:
    """The arms of a table, prompting ones first, each group by its label budget (zero-shot
    before few-shot), then by name."""
    budget = table.groupby("arm")["n_labels"].min()
    fit = table.groupby("arm")["fit"].first()
    return sorted(budget.index, key=lambda arm: (bool(fit[arm]), budget[arm], arm))


def best(cells: pd.DataFrame):
    """The row of highest quality (NaN quality ignored), or None."""
    scored = cells[cells["quality"].notna()]
    return None if scored.empty else scored.loc[scored["quality"].idxmax()]


def dtype_rank(dtype: str) -> int:
    return DTYPES.index(dtype) if dtype in DTYPES else len(DTYPES)


def dtypes(table: pd.DataFrame) -> list[str]:
    """The inference dtypes in a table, float32 first."""
    if "dtype" not in table:
        return [REFERENCE_DTYPE]
    return sorted(table["dtype"].unique(), key=lambda d: (dtype_rank(d), d))


def reduced(table: pd.DataFrame) -> bool:
    """Whether any cell was scored at a precision other than float32."""
    return "dtype" in table and bool((table["dtype"] != REFERENCE_DTYPE).any())


def reference(table: pd.DataFrame) -> pd.DataFrame:
    """The float32 cells, or, with none, the cells of the first dtype present."""
    return table[table["dtype"] == dtypes(table)[0]] if "dtype" in table else table


def precision_effect(table: pd.DataFrame) -> pd.DataFrame:
    """Each reduced-precision cell beside its float32 twin (same task, model, arm and label
    budget): quality change, whether it is clear (paired on the shared test examples: the
    difference's 95% interval excludes zero; else beyond both 95% intervals), cost change."""
    reference = table[table["dtype"] == REFERENCE_DTYPE].set_index(
        ["task", "model", "arm", "n_labels"])
    rows = []
    for _, r in table[table["dtype"] != REFERENCE_DTYPE].iterrows():
        key = (r["task"], r["model"], r["arm"], r["n_labels"])
        if key not in reference.index:
            continue
        ref = reference.loc[key]
        ref = ref.iloc[0] if isinstance(ref, pd.DataFrame) else ref  # variants: the first
        delta = r["quality"] - ref["quality"]
        margin = r["quality_ci"] + ref["quality_ci"]  # NaN with a single seed on either side
        result = compare(r, ref)
        clear = (result["low"] > 0 or result["high"] < 0) if result["paired"] else \
            bool(not math.isnan(margin) and abs(delta) > margin)
        rows.append({"task": r["task"], "model": r["model"], "arm": r["arm"],
                     "n_labels": r["n_labels"], "dtype": r["dtype"],
                     "quality_ref": ref["quality"], "quality_ci_ref": ref["quality_ci"],
                     "quality": r["quality"], "quality_ci": r["quality_ci"], "delta": delta,
                     "clear": bool(clear),
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
    arms = arm_order(table)
    cells = cells.assign(
        model_params=cells["model"].map(params),
        _api=cells["model"].map(params).isna(),
        _dtype=cells["dtype"].map(dtype_rank),
        _arm=cells["arm"].map(arms.index))
    cells = cells.sort_values(["_api", "model_params", "model", "_dtype", "dtype", "_arm", "arm"])
    return cells.drop(columns=["_api", "_dtype", "_arm"]).reset_index(drop=True)


def crossover(table: pd.DataFrame, arm: str) -> dict | None:
    """The smallest label budget from which `arm` beats the best prompting cell at that budget
    and at every larger budget tested (paired where the test set is shared). None when no such
    budget exists or nothing prompts. {"n_labels", "prompt", "fitted", "budgets", "result"}."""
    prompts = prompting(table)
    prompts = prompts[prompts["quality"].notna()]
    cells = table[table["arm"] == arm]
    if prompts.empty or cells.empty:
        return None
    top = prompts.loc[prompts["quality"].idxmax()]
    best_at = [group.loc[group["quality"].idxmax()]
               for _, group in cells.groupby("n_labels", sort=True)]
    results = [compare(row, top) for row in best_at]
    for i, (row, result) in enumerate(zip(best_at, results, strict=True)):
        if all(r["beats"] for r in results[i:]):
            return {"n_labels": int(row["n_labels"]), "prompt": top, "fitted": row,
                    "budgets": [int(r["n_labels"]) for r in best_at], "result": result}
    return None


def sensitivity(runs: pd.DataFrame) -> pd.DataFrame:
    """Spread of the prompting arms' quality over templates, demo orders and seeds, per arm,
    k, layout (plain or chat) and ranking (calibration): range, standard deviation, and the
    mean of each template (best and worst)."""
    runs = complete(runs)
    rows = []
    keys = ["dtype", "arm", "n_labels", "chat", "calibration"]
    for (dtype, arm, k, chat, ranked), group in prompting(runs).groupby(keys):
        by_prompt = group.groupby("prompt")["quality"].mean().dropna()
        scored = not by_prompt.empty  # False when no run logged the quality metric
        rows.append({"dtype": dtype, "arm": arm, "n_labels": k, "chat": chat,
                     "calibration": ranked, "runs": len(group),
                     "templates": group["prompt"].nunique(),
                     "orders": group["order_seed"].nunique(), "seeds": group["seed"].nunique(),
                     "min": group["quality"].min(), "max": group["quality"].max(),
                     "std": group["quality"].std(ddof=1) if len(group) > 1 else math.nan,
                     "best_template": by_prompt.idxmax() if scored else "n/a",
                     "worst_template": by_prompt.idxmin() if scored else "n/a",
                     "template_gap": by_prompt.max() - by_prompt.min() if scored else math.nan,
                     # the same runs ranked with calibration, from the same forward passes
                     **{f"{stat}_{name}": getattr(group[name], stat)()
                        for name in ("accuracy_contextual", "accuracy_pmi")
                        for stat in ("mean", "std")},
                     "mean": group["quality"].mean(),
                     "agreement": agreement(list(group["predictions"]))})
    return pd.DataFrame(rows)


