"""What the verdict compares: the Pareto front, the fine-tuning crossover, precision, model
scale, prompt sensitivity, and cost by volume (docs/cost.md)."""

import math

import numpy as np
import pandas as pd

from .cells import agreement, arm_order, compare, dtype_rank, fitted, label, prompting
from .runs import REFERENCE_DTYPE


def pareto_front(points: pd.DataFrame) -> pd.Series:
    """True for rows no other row beats on both quality and cost (and with both logged)."""
    quality, cost = points["quality"].to_numpy(float), points["usd_per_1k"].to_numpy(float)
    q, c = quality[:, None], cost[:, None]  # each row against every other (NaN beats none)
    beaten = ((quality >= q) & (cost <= c) & ((quality > q) | (cost < c))).any(axis=1)
    return pd.Series(~np.isnan(quality) & ~np.isnan(cost) & ~beaten, index=points.index)


def precision_effect(table: pd.DataFrame) -> pd.DataFrame:
    """Each reduced-precision cell beside its float32 twin (same task, model, arm and label
    budget): the quality change, whether it is clear at 95%, the cost change."""
    key = ["task", "model", "arm", "n_labels"]
    twins = table[table["dtype"] == REFERENCE_DTYPE].drop_duplicates(key).set_index(key)
    rows = []
    for _, r in table[table["dtype"] != REFERENCE_DTYPE].iterrows():
        if tuple(r[key]) not in twins.index:
            continue
        ref = twins.loc[tuple(r[key])]  # with variants: the first
        delta = r["quality"] - ref["quality"]
        margin = r["quality_ci"] + ref["quality_ci"]  # NaN with a single seed on either side
        result = compare(r, ref)
        clear = (result["low"] > 0 or result["high"] < 0) if result["paired"] else \
            bool(not math.isnan(margin) and abs(delta) > margin)
        rows.append({**r, **ref.add_suffix("_ref"), "delta": delta, "clear": bool(clear)})
    return pd.DataFrame(rows)


def model_scale(table: pd.DataFrame) -> pd.DataFrame:
    """One cell per model x dtype x arm (its largest label budget), models by parameter count."""
    cells = table.loc[table.groupby(["model", "dtype", "arm"], sort=False)["n_labels"].idxmax()]
    params = cells["model"].map(table.groupby("model")["total_params"].min())  # NaN: API
    cells = cells.assign(model_params=params, _api=params.isna(),
                         _dtype=cells["dtype"].map(dtype_rank),
                         _arm=cells["arm"].map(arm_order(table).index))
    cells = cells.sort_values(["_api", "model_params", "model", "_dtype", "dtype", "_arm", "arm"])
    return cells.drop(columns=["_api", "_dtype", "_arm"]).reset_index(drop=True)


def crossover(table: pd.DataFrame, arm: str) -> dict | None:
    """The smallest label budget from which `arm` beats the best prompting cell, there and at
    every larger budget tested: {"n_labels", "prompt", "fitted", "budgets", "result"}, or None."""
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
    """Spread of the prompting arms' quality over templates, demo orders and seeds."""
    keys = ["dtype", "arm", "n_labels", "chat", "calibration"]
    rows = []
    for values, group in prompting(runs).groupby(keys):
        by_prompt = group.groupby("prompt")["quality"].mean().dropna()
        scored = not by_prompt.empty  # False when no run logged the quality metric
        quality = group["quality"]
        rows.append({**dict(zip(keys, values, strict=True)), "runs": len(group),
                     "templates": group["prompt"].nunique(),
                     "orders": group["order_seed"].nunique(), "seeds": group["seed"].nunique(),
                     "min": quality.min(), "max": quality.max(),
                     "std": quality.std(),  # NaN for a single run
                     "best_template": by_prompt.idxmax() if scored else "n/a",
                     "worst_template": by_prompt.idxmin() if scored else "n/a",
                     "template_gap": by_prompt.max() - by_prompt.min() if scored else math.nan,
                     # the same runs ranked with calibration, from the same forward passes
                     **{f"{stat}_{name}": getattr(group[name], stat)()
                        for name in ("accuracy_contextual", "accuracy_pmi")
                        for stat in ("mean", "std")},
                     "mean": quality.mean(), "agreement": agreement(list(group["predictions"]))})
    return pd.DataFrame(rows)


def arm_costs(table: pd.DataFrame, search_usd: pd.Series | None = None) -> pd.DataFrame:
    """Per model x arm of a task, at its best cell: per-call USD, up-front USD (training, its
    search trials' `search_usd`, a hybrid teacher's labels) and quality."""
    rows = []
    for (model, dtype, arm), group in table.groupby(["model", "dtype", "arm"], sort=True):
        scored = group[group["quality"].notna()]
        top = (scored if not scored.empty else group).sort_values("quality").iloc[-1]
        search = 0.0 if search_usd is None else float(search_usd.get((model, arm), 0.0))
        teacher = top.get("teacher_usd")  # a hybrid's; none logged: nothing paid
        rows.append({"model": model, "dtype": dtype, "arm": arm, "fit": bool(top["fit"]),
                     "n_labels": int(top["n_labels"]), "quality": top["quality"],
                     "per_call": top["usd_per_1k"] / 1000,
                     "up_front": (top["train_usd"] if top["fit"] else 0.0) + search
                     + (0.0 if pd.isna(teacher) else float(teacher))})
    return pd.DataFrame(rows)


def break_even(costs: pd.DataFrame) -> pd.DataFrame:
    """Per fine-tuned x prompting pair: from how many predictions it is cheaper (inf: never)."""
    named = costs.assign(name=[_name(row) for _, row in costs.iterrows()])
    pairs = fitted(named).merge(prompting(named), how="cross",
                                suffixes=("_fine_tuned", "_prompting"))
    saving = pairs["per_call_prompting"] - pairs["per_call_fine_tuned"]
    return pd.DataFrame({
        "fine_tuned": pairs["name_fine_tuned"], "prompting": pairs["name_prompting"],
        "up_front_usd": pairs["up_front_fine_tuned"],
        "per_call_usd_fine_tuned": pairs["per_call_fine_tuned"],
        "per_call_usd_prompting": pairs["per_call_prompting"],
        "quality_fine_tuned": pairs["quality_fine_tuned"],
        "quality_prompting": pairs["quality_prompting"],
        "break_even_predictions": (pairs["up_front_fine_tuned"] / saving).where(saving > 0,
                                                                                math.inf)})


def at_volume(costs: pd.DataFrame, volume: int) -> pd.DataFrame:
    """Every arm's total cost for `volume` predictions, cheapest first, with its quality."""
    ranked = costs.assign(arm_name=costs.apply(_name, axis=1),
                          total_usd=costs["up_front"] + volume * costs["per_call"])
    return ranked.sort_values("total_usd").reset_index(drop=True)


def _name(row) -> str:
    return label(f"{row['model']}/{row['arm']}", row["dtype"])
