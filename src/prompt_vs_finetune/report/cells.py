"""Cells (a config's runs over seeds, on one test set), 95% intervals, what the verdict compares."""

import math

import numpy as np
import pandas as pd
from scipy import stats

from .mlflow_run import COLUMNS, REFERENCE_DTYPE

GROUP = ["task", "model", "dtype", "arm", "fit", "n_labels"]
DTYPES = ("float32", "bfloat16", "float16", "int8")  # display order; others after these
N_BOOT = 2000  # bootstrap resamples
RNG_SEED = 0  # the report's own draws: the same store gives the same report
MIN_SEEDS = 3  # fewer: a cell's interval holds the test set's noise, not the seeds'
WAYS = ("", "_cached")  # priced: every call its own prompt; with a prefix cache (docs/cost.md)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (search trials left out): quality, 95% interval, costs, `variant`."""
    runs = runs[~runs["hpo_trial"].astype(bool)]
    rows = []
    for cell, group in runs.groupby("cell", sort=True):
        matrix = _stack(list(group["examples"]))
        rows.append({**{key: group[key].iloc[0]
                        for key in [*GROUP, "metric", "test_set", "checkpoint"]}, "cell": cell,
                     "runs": int(group["quality"].notna().sum()),
                     "pretrained": bool(group["pretrained"].all()),
                     **interval(matrix, group["quality"]),
                     "val_quality": group["val_quality"].mean(),  # and per seed, for chosen()
                     "val_by_seed": group.groupby("seed")["val_quality"].mean().dropna().to_dict(),
                     "examples": matrix, "agreement": agreement(list(group["predictions"])),
                     **{column: group[column].mean() for column in COLUMNS}})
    table = pd.DataFrame(rows)
    return table.assign(variant=variants(table, runs)) if not table.empty else table


def interval(matrix: np.ndarray | None, values) -> dict:
    """The mean and its 95% interval: a bootstrap of `matrix`, else a t-interval over `values`."""
    if matrix is not None:
        (mean, low, high), how = bootstrap(matrix), "bootstrap"
    else:
        values, how = [float(v) for v in values if not math.isnan(float(v))], "t over seeds"
        n = len(values)
        mean = sum(values) / n if n else math.nan
        half = stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / math.sqrt(n) if n > 1 \
            else math.nan
        low, high = mean - half, mean + half
    return {"quality": mean, "quality_low": low, "quality_high": high,
            "quality_ci": (high - low) / 2, "interval": how}


def _stack(examples: list) -> np.ndarray | None:
    """[runs x test examples], when every run (or cell) logged as many per-example values."""
    if any(v is None for v in examples) or len({np.shape(v)[-1] for v in examples}) != 1 \
            or not np.shape(examples[0])[-1]:
        return None
    return np.vstack(examples)


def agreement(predictions) -> float:
    """The share of test examples every run predicted alike; NaN without two runs' predictions."""
    logged = [p for p in predictions if p is not None]
    if len(logged) < 2 or len(logged) != len(predictions) or len({len(p) for p in logged}) != 1:
        return math.nan
    return sum(len(set(map(str, each))) == 1 for each in zip(*logged, strict=True)) / len(logged[0])


def variants(table: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    """What sets a cell apart from the others of its GROUP: `key=value, ...` of its runs' params."""
    params = runs.groupby("cell")["params"].agg(  # those all its runs share
        lambda dicts: dict(set.intersection(*(set(d.items()) for d in dicts))))
    labels = pd.Series("", index=table.index)
    for same in (cells for cells in table.groupby(GROUP).groups.values() if len(cells) > 1):
        dicts = {i: params[table.loc[i, "cell"]] for i in same}
        keys = sorted({k for d in dicts.values() for k in d
                       if len({d.get(k) for d in dicts.values()}) > 1})
        for i, d in dicts.items():
            labels[i] = ", ".join(f"{k}={d.get(k)}" for k in keys)
            if not labels[i] and table.loc[i, "test_set"]:
                labels[i] = f"test set {table.loc[i, 'test_set'][:8]}"
    return labels


def bootstrap(a: np.ndarray, b: np.ndarray | None = None) -> tuple[float, float, float]:
    """(mean, low, high) of a cell's quality [seeds x test examples], or of a - b paired: a
    bootstrap over test examples, and the seeds' t half-width added in quadrature."""
    rng = np.random.default_rng(RNG_SEED)
    each = a.mean(axis=0) if b is None else a.mean(axis=0) - b.mean(axis=0)
    centre = float(each.mean())
    drawn = each[rng.integers(0, len(each), (N_BOOT, len(each)))].mean(axis=1)
    low, high = np.percentile(drawn, [2.5, 97.5])
    parts = [(m.mean(axis=1).var(ddof=1) / len(m), len(m)) for m in (a, b)
             if m is not None and len(m) >= MIN_SEEDS]  # the seeds' variance: Welch's for a - b
    variance = sum(v for v, _ in parts)
    freedom = variance ** 2 / sum(v ** 2 / (n - 1) for v, n in parts) if variance else 1
    seeds = float(stats.t.ppf(0.975, freedom) * math.sqrt(variance))  # 0 without
    low, high = centre - math.hypot(centre - low, seeds), centre + math.hypot(high - centre, seeds)
    if ((a >= 0) & (a <= 1)).all() and (b is None or ((b >= 0) & (b <= 1)).all()):
        low, high = max(low, -1.0 if b is not None else 0.0), min(high, 1.0)  # a share's bounds
    return centre, float(low), float(high)


def compare(a, b) -> dict:
    """Whether cell `a` beats `b`: paired on a shared test set, else by intervals apart."""
    if a["test_set"] == b["test_set"] and _stack([a["examples"], b["examples"]]) is not None:
        diff, low, high = bootstrap(a["examples"], b["examples"])
        return {"beats": low > 0, "paired": True, "diff": diff, "low": low, "high": high}
    return {"beats": bool(a["quality_low"] > b["quality_high"]), "paired": False,
            "diff": a["quality"] - b["quality"], "low": math.nan, "high": math.nan}


def chosen(table: pd.DataFrame, per: str = "side") -> pd.DataFrame:
    """Per task x model x dtype, `per` (`side`: prompting or a fine-tuning arm) and label budget:
    the configuration best on validation (else a blind pick), `configs`, `search_usd` and
    `from_cells` (the cell chosen, or the tied ones it pools)."""
    keyed = table.reindex(columns=[*table, *(c for c in COLUMNS if c not in table)]).assign(
        side=table["arm"].where(table["fit"].astype(bool), "prompting"))
    rows = []
    for _, cells in keyed.groupby(["task", "model", "dtype", per, "n_labels"], sort=True):
        scored, top = cells[cells["val_quality"].notna()], cells
        if len(cells) == 1:
            row, how = cells.iloc[0].to_dict(), ""
        elif not scored.empty:  # tied on validation: no label tells the best apart either
            val = shared_validation(scored)
            top = scored[val == val.max()]
            row = top.iloc[0].to_dict() if len(top) == 1 else _blind_pick(top)
            how = f"chosen on validation from {len(cells)} configurations" + (
                f", the mean of {len(top)} tied" if len(top) > 1 else "")
        else:
            row, how = _blind_pick(cells), f"the mean of {len(cells)}: no validation to choose by"
        validating = cells["val_quality"].notna() * cells["n_validation"].fillna(0) / 1000
        rows.append({**row, "configs": len(cells), "chosen_by": how,
                     "from_cells": list(top["cell"]), **{
            f"search_usd{way}": float((cells["train_usd"].fillna(0) + validating
                                       * cells[f"usd_per_1k{way}"].fillna(0)).sum())
            for way in WAYS}})
    return pd.DataFrame(rows)


def shared_validation(cells: pd.DataFrame) -> pd.Series:
    """Each cell's validation score over the seeds all of them ran (a configuration tuned at one
    seed and carried to more is compared at that seed: the same draw), else over its own."""
    runs = cells.get("val_by_seed", pd.Series([{}] * len(cells), index=cells.index))
    seeds = set.intersection(*map(set, runs))
    if not seeds or all(set(each) == seeds for each in runs):
        return cells["val_quality"]
    return runs.map(lambda each: float(np.mean([each[s] for s in sorted(seeds)])))


def _blind_pick(cells: pd.DataFrame) -> dict:
    """Configs no label tells apart, as one: runs pooled, so the interval carries their spread."""
    stacked = _stack(list(cells["examples"])) if cells["test_set"].nunique() == 1 else None
    return {**cells.iloc[0].to_dict(), **{c: cells[c].mean() for c in COLUMNS},
            **interval(stacked, [cells["quality"].mean()]), "runs": int(cells["runs"].sum()),
            "examples": stacked, "variant": f"any of {len(cells)} configurations"}


def prompting(table: pd.DataFrame) -> pd.DataFrame:
    return table[~table["fit"].astype(bool)]


def fitted(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["fit"].astype(bool)]


def arm_order(table: pd.DataFrame) -> list[str]:
    """The arms, prompting ones first, each group by label budget, then by name."""
    budget = table.groupby("arm")["n_labels"].min()
    fit = table.groupby("arm")["fit"].first()
    return sorted(budget.index, key=lambda arm: (bool(fit[arm]), budget[arm], arm))


def best(cells: pd.DataFrame):
    return None if cells["quality"].isna().all() else cells.loc[cells["quality"].idxmax()]


def dtype_rank(dtype: str) -> int:
    return DTYPES.index(dtype) if dtype in DTYPES else len(DTYPES)


def dtypes(table: pd.DataFrame) -> list[str]:
    return sorted(table["dtype"].unique(), key=lambda d: (dtype_rank(d), d))


def reduced(table: pd.DataFrame) -> bool:
    return "dtype" in table and bool((table["dtype"] != REFERENCE_DTYPE).any())


def label(name: str, dtype: str) -> str:
    return name if dtype == REFERENCE_DTYPE else f"{name} ({dtype})"


def pareto_front(points: pd.DataFrame) -> pd.Series:
    """True for rows no other row beats on both quality and cost (and with both logged)."""
    quality, cost = points["quality"].to_numpy(float), points["usd_per_1k"].to_numpy(float)
    q, c = quality[:, None], cost[:, None]  # each row against every other (NaN beats none)
    beaten = ((quality >= q) & (cost <= c) & ((quality > q) | (cost < c))).any(axis=1)
    return pd.Series(~np.isnan(quality) & ~np.isnan(cost) & ~beaten, index=points.index)


def precision_effect(table: pd.DataFrame) -> pd.DataFrame:
    """Each reduced-precision cell beside its float32 twin: the change, clear at 95% or not."""
    key = ["task", "model", "arm", "n_labels"]
    twins = table[table["dtype"] == REFERENCE_DTYPE].drop_duplicates(key).set_index(key)
    rows = []
    for _, r in table[table["dtype"] != REFERENCE_DTYPE].iterrows():
        if tuple(r[key]) not in twins.index:
            continue
        ref = twins.loc[tuple(r[key])]  # with variants: the first
        delta, result = r["quality"] - ref["quality"], compare(r, ref)
        clear = (result["low"] > 0 or result["high"] < 0) if result["paired"] else \
            abs(delta) > r["quality_ci"] + ref["quality_ci"]  # NaN (a single seed): not clear
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


def sensitivity(runs: pd.DataFrame) -> pd.DataFrame:
    """Spread of the prompting arms' quality over templates, demo orders and seeds."""
    keys = ["dtype", "arm", "n_labels", "chat", "calibration"]
    rows = []
    for values, group in prompting(runs).groupby(keys):
        by_prompt = group.groupby("prompt")["quality"].mean().dropna()
        scored = len(by_prompt) > 1  # a best template needs two (and the quality logged)
        quality = group["quality"]
        rows.append({**dict(zip(keys, values, strict=True)), "runs": len(group),
                     "templates": group["prompt"].nunique(),
                     "orders": group["order_seed"].nunique(), "seeds": group["seed"].nunique(),
                     "min": quality.min(), "max": quality.max(), "std": quality.std(),
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
    """Per model x arm at its largest budget, as chosen without test: quality and USD."""
    rows = []
    for (model, dtype, arm), group in chosen(table, per="arm").groupby(["model", "dtype", "arm"]):
        top = group.loc[group["n_labels"].idxmax()]
        fixed = np.nan_to_num(top["labels_usd"]) + (  # not logged: nothing paid
            0.0 if search_usd is None else float(search_usd.get((model, arm), 0.0)))
        rows.append({"model": model, "dtype": dtype, "arm": arm,
                     "name": label(f"{model}/{arm}", dtype), "fit": bool(top["fit"]),
                     "n_labels": int(top["n_labels"]), "quality": top["quality"],
                     **{f"per_call{way}": top[f"usd_per_1k{way}"] / 1000 for way in WAYS},
                     **{f"up_front{way}": top[f"search_usd{way}"] + fixed
                        + np.nan_to_num(top[f"teacher_usd{way}"]) for way in WAYS}})
    return pd.DataFrame(rows)


def break_even(costs: pd.DataFrame) -> pd.DataFrame:
    """Per fine-tuned x prompting pair, each of WAYS: from how many predictions the fine-tuned
    arm costs less in all (0: from the first, inf: never, NaN: not priced)."""
    pairs = fitted(costs).merge(prompting(costs), how="cross",
                                suffixes=("_fine_tuned", "_prompting"))
    frame = pairs[["name_fine_tuned", "name_prompting", "quality_fine_tuned", "quality_prompting"]
                  ].rename(columns={"name_fine_tuned": "fine_tuned", "name_prompting": "prompting"})
    for way in WAYS:
        up, call = ([pairs[f"{key}{way}_{side}"] for side in ("fine_tuned", "prompting")]
                    for key in ("up_front", "per_call"))
        saving = call[1] - call[0]
        frame[f"up_front_usd{way}"], frame[f"up_front_usd_prompting{way}"] = up
        frame[f"per_call_usd_fine_tuned{way}"], frame[f"per_call_usd_prompting{way}"] = call
        frame[f"break_even_predictions{way}"] = ((up[0] - up[1]).clip(lower=0) / saving).where(
            saving > 0, math.inf).mask(saving.isna())
    return frame


def at_volume(costs: pd.DataFrame, volume: int) -> pd.DataFrame:
    """Every arm's total cost for `volume` predictions each of WAYS, cheapest first (no cache)."""
    ranked = costs.assign(arm_name=costs["name"], **{
        f"total_usd{way}": costs[f"up_front{way}"] + volume * costs[f"per_call{way}"]
        for way in WAYS})
    return ranked.sort_values("total_usd").reset_index(drop=True)
