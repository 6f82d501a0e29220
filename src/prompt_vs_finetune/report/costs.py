"""Which arm is cheaper for me? Fine-tuning pays up front (training, and the search that chose
its settings), prompting pays on every call (a long few-shot prompt, or an API's price per
token). Over a volume of V predictions an arm costs

    total(V) = up_front + V x per_call

so a fine-tuned arm becomes cheaper than a prompting arm after its break-even volume,
up_front / (per_call_prompting - per_call_fine_tuned), and never when its calls cost more.
Per-call costs are the runs' modelled cost (tokens x price), not their wall time."""

import math

import pandas as pd

from .stats import fitted, prompting


def arm_costs(table: pd.DataFrame, search_usd: pd.Series | None = None) -> pd.DataFrame:
    """One row per model x arm of a task (its best cell by quality): per-call USD, up-front
    USD (training, plus `search_usd` of the arm's hyper-parameter search trials), quality."""
    rows = []
    for (model, dtype, arm), group in table.groupby(["model", "dtype", "arm"], sort=True):
        scored = group[group["quality"].notna()]
        best = (scored if not scored.empty else group).sort_values("quality").iloc[-1]
        search = 0.0 if search_usd is None else float(search_usd.get((model, arm), 0.0))
        rows.append({"model": model, "dtype": dtype, "arm": arm, "fit": bool(best["fit"]),
                     "n_labels": int(best["n_labels"]), "quality": best["quality"],
                     "per_call": best["usd_per_1k"] / 1000,
                     "up_front": (best["train_usd"] if best["fit"] else 0.0) + search
                     + _or_zero(best.get("teacher_usd"))})
    return pd.DataFrame(rows)


def _or_zero(value) -> float:
    """A cost a run may not have logged (a hybrid teacher's): none is zero."""
    return 0.0 if value is None or value != value else float(value)


def break_even(costs: pd.DataFrame) -> pd.DataFrame:
    """For each fine-tuned x prompting pair: the number of predictions from which the
    fine-tuned arm's total cost is below the prompting arm's (inf: never, its calls cost as
    much or more)."""
    rows = []
    for _, tuned in fitted(costs).iterrows():
        for _, prompt in prompting(costs).iterrows():
            saving = prompt["per_call"] - tuned["per_call"]
            volume = tuned["up_front"] / saving if saving > 0 else math.inf
            rows.append({"fine_tuned": _name(tuned), "prompting": _name(prompt),
                         "up_front_usd": tuned["up_front"],
                         "per_call_usd_fine_tuned": tuned["per_call"],
                         "per_call_usd_prompting": prompt["per_call"],
                         "quality_fine_tuned": tuned["quality"],
                         "quality_prompting": prompt["quality"],
                         "break_even_predictions": volume})
    return pd.DataFrame(rows)


def at_volume(costs: pd.DataFrame, volume: int) -> pd.DataFrame:
    """Every arm's total cost for `volume` predictions, cheapest first, with its quality."""
    total = costs["up_front"] + volume * costs["per_call"]
    ranked = costs.assign(arm_name=costs.apply(_name, axis=1), total_usd=total)
    return ranked.sort_values("total_usd").reset_index(drop=True)


def _name(row) -> str:
    """model/arm, with the dtype unless float32."""
    suffix = "" if row["dtype"] == "float32" else f" ({row['dtype']})"
    return f"{row['model']}/{row['arm']}{suffix}"
