"""The verdict in plain words per task x model and precision, and across models."""

import math

import pandas as pd

from .cells import MIN_SEEDS, arm_order, best, chosen, compare, dtypes, fitted, label, prompting
from .tables import cell, num, params

AT_CHANCE = "at chance by construction"
RANDOM_WEIGHTS = f"{AT_CHANCE}: random weights"


def recommend(table: pd.DataFrame, metric: str, prompting_only_note: bool = True) -> list[str]:
    """The recommendation for one task x model at one precision, from its cells."""
    top = best(table)
    if top is None:
        return [f"No run logged {metric}: nothing to recommend."]
    if table["runs"].max() < 2 and not (table["interval"] == "bootstrap").any():
        return [f"Evidence too thin to recommend: every cell has a single run and no "
                f"per-example values, so no confidence interval. Rerun with seed=0,1,2 "
                f"(best {metric} so far: {top['arm']})."]
    random = "pretrained" in table and not table["pretrained"].all()
    lines = []
    if random:  # model.tiny: every prompting statement below is about a model that knows nothing
        lines.append(f"This model has random weights (model.tiny): its prompting arms are "
                     f"{AT_CHANCE}, so nothing here says whether prompting a pretrained model "
                     "works; its fine-tuning rows check the pipeline, not the rule. Run a "
                     "pretrained model (model=smollm2) for a verdict.")
    if table["runs"].max() < 2:
        lines.append("One seed per cell: the intervals cover the test set's sampling noise, "
                     "not the seed's; rerun with seed=0,1,2 for both.")
    elif table["runs"].min() < MIN_SEEDS:
        lines.append(f"Cells with fewer than {MIN_SEEDS} seeds have intervals that leave the "
                     "seeds' variance out (the test set's noise only); rerun them with "
                     "seed=0,1,2.")
    lines += _prompting_line(prompting(table), metric, random)
    trained = fitted(table)
    if prompting_only_note and trained.empty:
        lines.append("Only the prompting arms ran for this model (API models are not "
                     "fine-tuned here): no fine-tuned arm of it to compare with.")
    if prompting(table)["quality"].notna().any():
        lines += [_crossover_line(table, arm, metric)
                  + (f" (The prompts compared are {RANDOM_WEIGHTS}.)" if random else "")
                  for arm in arm_order(trained)]
    fixed = sorted({int(n) for n in trained[trained["checkpoint"] == "last"]["n_labels"]})
    if fixed:
        lines.append(f"Fine-tuning at {', '.join(map(str, fixed))} labels ran a fixed schedule "
                     "and scored its last weights: validation under arm.min_validation "
                     "examples is too small to choose a checkpoint or stop early on.")
    return lines + _cheaper_training(trained, metric)


def _prompting_line(prompts: pd.DataFrame, metric: str, random: bool) -> list[str]:
    picks = chosen(prompts)
    picks = picks[picks["quality"].notna()]
    if picks.empty:
        return []
    caveat = f" ({RANDOM_WEIGHTS})" if random else ""
    each = "; ".join(f"{int(r['n_labels'])} labels: {_config(r)}, {metric} {cell(r)}" + (
        f", {r['unparsed_rate']:.1%} of its replies matched no label"
        if r["unparsed_rate"] > 0 else "") for _, r in picks.iterrows())
    return [f"Prompting, its configuration chosen at each label budget on that budget's "
            f"validation labels, never on test: {each}{caveat}."]


def _config(row) -> str:
    """A chosen configuration in words: its arm and what sets it apart, and how it was chosen."""
    said = "; ".join(filter(None, [row.get("variant"), row["chosen_by"]]))
    return row["arm"] + (f" ({said})" if said else "")


def crossover(table: pd.DataFrame, arm: str) -> dict | None:
    """The smallest budget from which `arm` beats prompting there and at every larger one, each
    side as chosen without test (prompting at that budget, else the largest smaller): or None."""
    picks = chosen(table)
    prompts = picks[(picks["side"] == "prompting") & picks["quality"].notna()]
    pairs = []
    for _, row in picks[picks["side"] == arm].sort_values("n_labels").iterrows():
        below = prompts[prompts["n_labels"] <= row["n_labels"]]
        if not below.empty:
            pairs.append((row, below.loc[below["n_labels"].idxmax()]))
    results = [compare(row, prompt) for row, prompt in pairs]
    for i, ((row, prompt), result) in enumerate(zip(pairs, results, strict=True)):
        if all(r["beats"] for r in results[i:]):
            return {"n_labels": int(row["n_labels"]), "prompt": prompt, "fitted": row,
                    "result": result}
    return None


def _crossover_line(table: pd.DataFrame, arm: str, metric: str) -> str:
    """From which label budget a fine-tuned arm beats prompting for good, or not."""
    cells = table[table["arm"] == arm]
    budgets = sorted(int(n) for n in cells["n_labels"].unique())
    found = crossover(table, arm)
    prompted = prompting(table)["n_labels"]
    if not found and (prompted.empty or prompted.min() > budgets[-1]):
        return (f"{arm} ({', '.join(map(str, budgets))} labels) has no prompting run at or "
                "below its budgets to be compared with: run the prompting arms with "
                f"train_size={budgets[0]} (or with no labels).")
    if not found:
        top = chosen(cells)
        top = top.loc[top["n_labels"].idxmax()]
        tested = ("the only budget tested" if len(budgets) == 1
                  else f"budgets tested: {', '.join(map(str, budgets))}")
        return (f"{arm} does not beat prompting at every budget from some point on ({tested}; "
                f"at {int(top['n_labels'])} labels: {cell(top)}): prompt, or collect more labels "
                "and seeds.")
    prompt, result = found["prompt"], found["result"]
    versus = f"prompting ({_config(prompt)}, at {int(prompt['n_labels'])} labels)"
    numbers = f"{metric} {cell(found['fitted'])} vs {cell(prompt)}" + (
        f", paired difference {result['diff']:+.3f} [{result['low']:+.3f}, {result['high']:+.3f}]"
        " (paired bootstrap over the shared test examples)" if result["paired"]
        else " (95% intervals apart)")
    if len(budgets) == 1:
        return (f"{arm} at {budgets[0]} labels (the only budget tested) beats {versus}: "
                f"{numbers}; fewer labels were not tested.")
    larger = [n for n in budgets if n > found["n_labels"]]
    smaller = [n for n in budgets if n < found["n_labels"]]
    where = (f"there and at every larger budget tested ({', '.join(map(str, larger))})"
             if larger else "there, the largest budget tested")
    below = (f" With fewer labels ({', '.join(map(str, smaller))}) it does not clearly "
             "beat prompting." if smaller else "")
    return (f"Fine-tune ({arm}) once you have about {found['n_labels']} labelled "
            f"examples: it beats {versus} {where}; {numbers}.{below}")


def _cheaper_training(trained: pd.DataFrame, metric: str) -> list[str]:
    """Each fine-tuned arm against the one training the most parameters, at a shared budget."""
    arms = trained.groupby("arm")["trainable_params"].max().sort_values()
    if len(arms) < 2:
        return []
    most = arms.index[-1]
    lines = []
    for arm in arms.index[:-1]:
        a, b = trained[trained["arm"] == arm], trained[trained["arm"] == most]
        shared = sorted(set(a["n_labels"]) & set(b["n_labels"]))
        if not shared:
            continue
        lo, hi = (chosen(rows[rows["n_labels"] == shared[-1]]).iloc[0] for rows in (a, b))
        paid = [r["train_usd"] + (0 if pd.isna(r["teacher_usd"]) else r["teacher_usd"])
                for r in (lo, hi)]  # up front: a hybrid's teacher too
        teacher = "" if paid == [lo["train_usd"], hi["train_usd"]] else " (a teacher's included)"
        if paid[1] > 0:
            lines.append(f"At {int(shared[-1])} labels {arm} reaches {metric} {cell(lo)} vs "
                         f"{most} {cell(hi)}, at {100 * paid[0] / paid[1]:.0f}% of {most}'s "
                         f"training cost{teacher} and {num(lo['trainable_params'])} vs "
                         f"{num(hi['trainable_params'])} trainable parameters.")
    return lines


def recommend_precision(effect: pd.DataFrame, metric: str) -> list[str]:
    """One line per reduced dtype with float32 twins: its quality change and relative cost."""
    lines = []
    for dtype, rows in effect.groupby("dtype", sort=False):
        rows = rows[rows["delta"].notna()]
        if rows.empty:
            continue
        worst, clear = rows.loc[rows["delta"].idxmin()], int(rows["clear"].sum())
        cost = rows[(rows["usd_per_1k_ref"] > 0) & rows["usd_per_1k"].notna()]
        ratio = (cost["usd_per_1k"] / cost["usd_per_1k_ref"]).mean()  # NaN: none priced
        lines.append(
            f"{dtype} vs float32: {metric} changes by {rows['delta'].mean():+.3f} on average over "
            f"{len(rows)} cell(s) (largest drop {worst['delta']:+.3f}, {worst['arm']} at "
            f"{int(worst['n_labels'])} labels); {clear} of {len(rows)} clearly different at 95%"
            + ("" if math.isnan(ratio) else f"; {100 * ratio:.0f}% of the float32 inference cost")
            + ".")
    return lines


def advise(cells: pd.DataFrame, metric: str, effect: pd.DataFrame) -> list[str]:
    """The recommendation for one task x model, per dtype, then the precision `effect`."""
    present = dtypes(cells)
    if len(present) == 1:
        return recommend(cells, metric)
    note = fitted(cells).empty  # not for a dtype only prompting ran at
    lines = [f"[{dtype}] {line}" for dtype in present
             for line in recommend(cells[cells["dtype"] == dtype], metric, note)]
    return lines + recommend_precision(effect, metric)


def recommend_scale(scale: pd.DataFrame, metric: str) -> list[str]:
    """The best cell across models, and the smallest model not clearly worse (intervals overlap)."""
    top = best(scale)
    if top is None:
        return []
    floor = top["quality"] - (0 if math.isnan(top["quality_ci"]) else top["quality_ci"])
    small = scale[scale["quality"] + scale["quality_ci"].fillna(0) >= floor].iloc[0]  # by size
    def model_cell(r) -> str:
        return (f"{label(r['model'], r['dtype'])} ({params(r['model_params'])}) {r['arm']}, "
                f"{metric} {cell(r)}, USD {num(r['usd_per_1k'])} per 1k predictions")
    lines = [f"Best across models: {model_cell(top)}."]
    if small["model"] != top["model"] or small["dtype"] != top["dtype"]:
        lines.append("Smallest model not clearly worse (95% intervals overlap): "
                     f"{model_cell(small)}.")
    return lines


