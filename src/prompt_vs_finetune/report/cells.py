"""Cells: the runs of one config that differ only in their seeds, on one test set. Each cell's
mean quality and 95% interval, from a two-level bootstrap over its [seeds x test examples]
quality matrix (the examples resampled, shared by every seed; then the seeds), or a t-interval
over seeds for runs without per-example values (`interval` says which)."""

import math

import numpy as np
import pandas as pd
from scipy import stats

from .runs import COLUMNS, REFERENCE_DTYPE

GROUP = ["task", "model", "dtype", "arm", "fit", "n_labels"]
DTYPES = ("float32", "bfloat16", "float16", "int8")  # display order; others after these
N_BOOT = 2000  # bootstrap resamples
RNG_SEED = 0  # the report's own draws: the same store gives the same report


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (search trials left out): its quality, interval, costs and `variant`."""
    runs = runs[~runs["hpo_trial"].astype(bool)]
    rows = []
    for cell, group in runs.groupby("cell", sort=True):
        matrix = _matrix(group)
        if matrix is not None:
            mean, low, high = bootstrap(matrix)
        else:
            mean, half = mean_ci(group["quality"])
            low, high = mean - half, mean + half
        rows.append({**{key: group[key].iloc[0] for key in GROUP}, "cell": cell,
                     "metric": group["metric"].iloc[0], "test_set": group["test_set"].iloc[0],
                     "runs": int(group["quality"].notna().sum()),
                     "pretrained": bool(group["pretrained"].all()),
                     "quality": mean, "quality_low": low, "quality_high": high,
                     "quality_ci": (high - low) / 2,
                     "interval": "t over seeds" if matrix is None else "bootstrap",
                     "examples": matrix, "agreement": agreement(list(group["predictions"])),
                     **{column: group[column].mean() for column in COLUMNS}})
    table = pd.DataFrame(rows)
    return table.assign(variant=variants(table, runs)) if not table.empty else table


def mean_ci(values) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval); the half-width is NaN for fewer than 2."""
    values = [float(v) for v in values if not math.isnan(float(v))]
    n = len(values)
    mean = sum(values) / n if n else math.nan
    if n < 2:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)


def _matrix(group: pd.DataFrame) -> np.ndarray | None:
    """[runs x test examples] of a cell, when every run logged as many per-example values."""
    values = [v for v in group["examples"] if v is not None] if "examples" in group else []
    if not values or len(values) != len(group) or len({len(v) for v in values}) != 1 \
            or not len(values[0]):
        return None
    return np.vstack(values)


def agreement(predictions) -> float:
    """The share of test examples every run predicted alike; NaN without two runs' predictions."""
    logged = [p for p in predictions if p is not None]
    if len(logged) < 2 or len(logged) != len(predictions) or len({len(p) for p in logged}) != 1:
        return math.nan
    return sum(len(set(map(str, each))) == 1 for each in zip(*logged, strict=True)) / len(logged[0])


def variants(table: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    """For cells that share task, model, dtype, arm and label budget: the config values that
    differ among them (`key=value, ...`), those its own runs agree on (not a per-run folder)."""
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
    first, *rest = list(dicts)
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in rest)}


def _resampled_means(matrix: np.ndarray, examples: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """Mean quality under each resample: the examples drawn (shared by every seed), then the
    seeds."""
    per_seed = np.stack([row[examples].mean(axis=1) for row in matrix])  # [S x B]
    if len(matrix) == 1:
        return per_seed[0]
    drawn = rng.integers(0, len(matrix), (examples.shape[0], len(matrix)))
    return per_seed[drawn, np.arange(examples.shape[0])[:, None]].mean(axis=1)


def bootstrap(a: np.ndarray, b: np.ndarray | None = None) -> tuple[float, float, float]:
    """(mean, 2.5th, 97.5th percentile) of a cell's quality [seeds x test examples], or of a - b
    where b is scored on the same test examples (paired: both resampled alike)."""
    rng = np.random.default_rng(RNG_SEED)
    examples = rng.integers(0, a.shape[1], (N_BOOT, a.shape[1]))
    means = _resampled_means(a, examples, rng)
    if b is not None:
        means = means - _resampled_means(b, examples, rng)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(a.mean() if b is None else a.mean() - b.mean()), float(low), float(high)


def compare(a, b) -> dict:
    """Whether cell `a` beats cell `b`: on a shared test set, paired (the difference's 95%
    interval excludes zero); else the intervals do not overlap."""
    if (a["examples"] is not None and b["examples"] is not None
            and a["test_set"] == b["test_set"] and a["examples"].shape[1]
            == b["examples"].shape[1]):
        diff, low, high = bootstrap(a["examples"], b["examples"])
        return {"beats": low > 0, "paired": True, "diff": diff, "low": low, "high": high}
    return {"beats": bool(a["quality_low"] > b["quality_high"]), "paired": False,
            "diff": a["quality"] - b["quality"], "low": math.nan, "high": math.nan}


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
    """The row of highest quality (NaN quality ignored), or None."""
    scored = cells[cells["quality"].notna()]
    return None if scored.empty else scored.loc[scored["quality"].idxmax()]


def dtype_rank(dtype: str) -> int:
    return DTYPES.index(dtype) if dtype in DTYPES else len(DTYPES)


def dtypes(table: pd.DataFrame) -> list[str]:
    """The inference dtypes in a table, float32 first."""
    return sorted(table["dtype"].unique(), key=lambda d: (dtype_rank(d), d))


def reduced(table: pd.DataFrame) -> bool:
    """Whether some cell was scored at a precision other than float32."""
    return "dtype" in table and bool((table["dtype"] != REFERENCE_DTYPE).any())


def label(name: str, dtype: str) -> str:
    """A model or arm name, with its dtype unless float32."""
    return name if dtype == REFERENCE_DTYPE else f"{name} ({dtype})"
