"""The report's markdown tables, and numbers as the report writes them ("n/a": not logged)."""

import math

import pandas as pd

from .cells import arm_order, dtype_rank, label, reduced

DEGENERATION = (("repeated_ngram_rate", ".1%"), ("hit_max_new_tokens", ".0%"),
                ("length_words_std", ".1f"))  # generation's consistency columns, in one


def num(value, spec: str = ".3g") -> str:
    return "n/a" if pd.isna(value) else format(value, spec)


def quality(row) -> str:
    """The mean and its 95% interval: [low, high] (bootstrap), or ± the t half-width over seeds
    marked † (runs without per-example values: no test-set noise in it)."""
    if math.isnan(row["quality"]):
        return "n/a"
    if row.get("interval") == "bootstrap":
        return f"{row['quality']:.3f} [{row['quality_low']:.3f}, {row['quality_high']:.3f}]"
    ci = "" if math.isnan(row["quality_ci"]) else f" ± {row['quality_ci']:.3f}†"
    return f"{row['quality']:.3f}{ci}"


def cell(row) -> str:
    runs = int(row["runs"])
    return f"{quality(row)} ({runs} run{'' if runs == 1 else 's'})"


def params(n) -> str:
    """A parameter count in words: 82M, 1.56B."""
    if n is None or math.isnan(n):
        return "n/a"
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def _markdown(headers: list[str], rows: list[list], title: str = "") -> list[str]:
    head, *body = ["| " + " | ".join(map(str, cells)) + " |" for cells in [headers, *rows]]
    return [*([title, ""] if title else []), head, "|" + "---|" * len(headers), *body, ""]


def _table(columns: list, frame: pd.DataFrame, title: str = "") -> list[str]:
    """A row per row of `frame`; columns: (header, a function of the row, or a column and the
    format of its numbers if given), or falsy to leave out."""
    columns = [column for column in columns if column]
    rows = [[how(r) if callable(how) else num(r[how], *spec) if spec else r[how]
             for _, how, *spec in columns]  # each column's own type: 4, not 4.0
            for r in frame.to_dict("records")]
    return _markdown([header for header, *_ in columns], rows, title)


def _pair(first: str, second: str, spec: str = ".3g", between: str = " / "):
    return lambda r: f"{num(r[first], spec)}{between}{num(r[second], spec)}"


def _after(column: str):
    """A break-even in words (inf: never; NaN: a side not priced)."""
    return lambda r: ("n/a" if pd.isna(r[column]) else "never (its calls cost as much or more)"
                      if r[column] == math.inf else f"{r[column]:,.0f} predictions")


def _has(table: pd.DataFrame, column: str) -> bool:
    return column in table and table[column].notna().any()


def cells_table(table: pd.DataFrame, metric: str) -> list[str]:
    """The cells of one task x model; a column that no cell has a value for is left out."""
    ordered = table.assign(_dtype=table["dtype"].map(dtype_rank))
    return _table([
        ("arm", "arm"), (table["variant"] != "").any() and ("variant", "variant"),
        reduced(table) and ("dtype", "dtype"), ("N labels", "n_labels"), ("runs", "runs"),
        (f"{metric} [95% interval]", quality), *_secondary(table),
        _has(table, "val_quality") and (f"validation {metric}", "val_quality", ".3f"),
        ("perplexity", "perplexity", ".3g"),
        (table["unparsed_rate"] > 0).any() and ("unparsed replies", "unparsed_rate", ".1%"),
        _has(table, "agreement") and ("agreement across seeds", "agreement", ".0%"),
        _has(table, "ece") and ("ECE", "ece", ".3f"),  # rank classification: calibration
        not _has(table, "ece") and _has(table, DEGENERATION[0][0]) and (
            "repeated trigrams / cut at max tokens / length sd (words)",
            lambda r: " / ".join(num(r[column], spec) for column, spec in DEGENERATION)),
        ("USD / 1k pred.", "usd_per_1k", ".3g"), _has(table, "usd_per_1k_cached") and (
            "USD / 1k pred., prefix cache", "usd_per_1k_cached", ".3g"),
        ("train USD", "train_usd", ".3g"), ("trainable params", "trainable_params", ".3g"),
        ("Pareto", lambda r: "yes" if r["pareto"] else "")],
        ordered.sort_values(["arm", "n_labels", "_dtype", "dtype"]))


def _secondary(table: pd.DataFrame) -> list:
    return [_has(table, "macro_f1") and ("macro-F1", "macro_f1", ".3f"),
            _has(table, "rouge1") and ("ROUGE-1 / ROUGE-2", _pair("rouge1", "rouge2", ".3f"))]


def learning_curve_table(picks: pd.DataFrame, metric: str) -> list[str]:
    """Each side's configuration chosen without test per budget: what the verdict compares."""
    ordered = picks.assign(_fit=picks["fit"].astype(bool)).sort_values(
        ["_fit", "side", "dtype", "n_labels"])
    return _table([
        ("side", "side"), reduced(picks) and ("dtype", "dtype"), ("N labels", "n_labels"),
        ("configuration", lambda r: r["arm"] + (f" ({r['variant']})" if r["variant"] else "")),
        ("chosen by", lambda r: r["chosen_by"] or "its only configuration"),
        ("runs", "runs"), (f"{metric} [95% interval]", quality), *_secondary(picks),
        _has(picks, "agreement") and ("agreement across seeds", "agreement", ".0%"),
        _has(picks, "classes_covered") and ("classes covered", "classes_covered", ".0f"),
        ("search USD (training + validation)", "search_usd", ".3g")], ordered,
        f"**Learning curve** (each side at each label budget, its configuration chosen on that "
        f"budget's validation labels, never on test; {metric}; the verdict compares these rows "
        "only, at equal budgets, and so does the agreement across seeds)")


def precision_table(effect: pd.DataFrame, metric: str) -> list[str]:
    return _table([
        ("arm", "arm"), ("N labels", "n_labels"), ("dtype", "dtype"),
        (f"{metric} float32", lambda r: quality({"quality": r["quality_ref"],
                                                  "quality_ci": r["quality_ci_ref"]})),
        (metric, quality), ("change", "delta", "+.3f"),
        ("clear at 95% (paired)", lambda r: "yes" if r["clear"] else ""),
        ("perplexity float32 → dtype", _pair("perplexity_ref", "perplexity", between=" → ")),
        ("USD / 1k pred. float32 → dtype", _pair("usd_per_1k_ref", "usd_per_1k", between=" → "))],
        effect, f"**Precision** ({metric} of each reduced-precision cell against the same cell "
        "at float32)")


def scale_table(scale: pd.DataFrame, metric: str) -> list[str]:
    arms = arm_order(scale)
    rows = []
    for (model, dtype), cells in scale.groupby(["model", "dtype"], sort=False):
        by_arm = cells.set_index("arm")
        prompts = cells[~cells["fit"].astype(bool)].sort_values("n_labels")["bits_per_byte"]
        rows.append([label(model, dtype), params(cells["model_params"].iloc[0]),
                     num(prompts.dropna().iloc[0] if prompts.notna().any() else math.nan),
                     *(f"{quality(by_arm.loc[a])} [{num(by_arm.loc[a, 'usd_per_1k'])}]"
                       if a in by_arm.index else "—" for a in arms)])
    return _markdown(["model", "params", "bits per byte", *arms], rows,
                     f"**Model scale** ({metric} and its 95% interval, [USD per 1k predictions]; "
                     "each arm at its largest label budget; models by parameter count, those "
                     "without one (API models) last; — : not run. Bits per byte: the gold "
                     "answers' log-likelihood under the prompt with the fewest demos, per UTF-8 "
                     "byte, which unlike per-token perplexity compares models with different "
                     "tokenizers)")


def sensitivity_table(spread: pd.DataFrame, metric: str) -> list[str]:
    """The prompt-sensitivity table, and the calibrated ranking's where runs logged one."""
    chat = "chat" in spread and spread["chat"].eq("true").any()
    ranked = "calibration" in spread and spread["calibration"].isin(["contextual", "pmi"]).any()
    layout = [chat and ("layout", lambda r: "chat" if r["chat"] == "true" else "plain"),
              ranked and ("ranked by", lambda r: r["calibration"] or "n/a"), ("runs", "runs")]
    lines = _table([
        ("arm", "arm"), reduced(spread) and ("dtype", "dtype"), ("k", "n_labels"), *layout,
        ("templates", "templates"), ("orders", "orders"), ("seeds", "seeds"),
        *((stat, stat, ".3f") for stat in ("min", "max", "std")),
        ("best template", "best_template"), ("worst template", "worst_template"),
        ("gap between template means", "template_gap", ".3f")], spread,
        "**Prompt sensitivity** (every run of the prompting arms: templates x demo orders x "
        f"seeds; {metric})")
    if _has(spread, "mean_accuracy_contextual"):
        stats = [("mean", "mean"), ("std", "std"), ("contextual: mean", "mean_accuracy_contextual"),
                 ("std", "std_accuracy_contextual"), ("PMI: mean", "mean_accuracy_pmi"),
                 ("std", "std_accuracy_pmi")]
        lines += _table([("arm", "arm"), ("k", "n_labels"), *layout,
                         *((header, column, ".3f") for header, column in stats),
                         ("agreement", "agreement", ".0%")], spread,
                        "The same runs ranked with calibration (the same forward passes): mean "
                        "and standard deviation over the runs; agreement: the share of test "
                        "examples every run answered alike.")
    return lines


def break_even_table(crossings: pd.DataFrame, metric: str) -> list[str]:
    """Each fine-tuned x prompting pair's costs, break-even, quality; then with a prefix cache."""
    return _table([
        ("fine-tuned", "fine_tuned"), ("prompting", "prompting"),
        (f"{metric}, fine-tuned vs prompting",
         _pair("quality_fine_tuned", "quality_prompting", ".3f", " vs ")),
        ("up-front USD", "up_front_usd", ".3g"),
        ("USD per call, fine-tuned", "per_call_usd_fine_tuned", ".3g"),
        ("USD per call, prompting", "per_call_usd_prompting", ".3g"),
        ("cheaper after", _after("break_even_predictions")),
        ("up-front USD, prompting", "up_front_usd_prompting", ".3g"),
        ("prefix cache: up-front USD, fine-tuned / prompting",
         _pair("up_front_usd_cached", "up_front_usd_prompting_cached")),
        ("prefix cache: USD per call, fine-tuned / prompting",
         _pair("per_call_usd_fine_tuned_cached", "per_call_usd_prompting_cached")),
        ("prefix cache: cheaper after", _after("break_even_predictions_cached"))], crossings)


def volume_table(ranked: pd.DataFrame, volume: int, metric: str) -> list[str]:
    return _table([
        ("arm", "arm_name"), ("total USD", "total_usd", ".3g"), ("up-front USD", "up_front", ".3g"),
        ("USD per call", "per_call", ".3g"), (metric, "quality", ".3f"),
        ("prefix cache: total USD", "total_usd_cached", ".3g"),
        ("prefix cache: up-front / per call USD", _pair("up_front_cached", "per_call_cached"))],
        ranked, f"**At {volume:,} predictions** (`--volume`), cheapest first without a cache")
