"""The report's tables in markdown (the cells of a task x model, the precision comparison, the
model-scale grid, the prompt-sensitivity spread, the break-even volumes), and numbers as the
report writes them."""

import math

import pandas as pd

from .cells import arm_order, dtype_rank, label, reduced

# a consistency column: (its title, the column that says the cells have it, (column, format)s)
CONSISTENCY = (
    ("ECE", "ece", (("ece", ".3f"),)),  # rank classification: calibration error
    ("repeated trigrams / cut at max tokens / length sd (words)", "repeated_ngram_rate",
     (("repeated_ngram_rate", ".1%"), ("hit_max_new_tokens", ".0%"),
      ("length_words_std", ".1f"))),  # generation: degeneration and length spread
)


def num(value, spec: str = ".3g") -> str:
    """A number for a table; "n/a" when the runs did not log it (NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, spec)


def quality(row) -> str:
    """The mean and its 95% interval: [low, high] (bootstrap), or ± the t half-width over seeds
    marked † (no test-set noise in it: runs without per-example values)."""
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
    """A parameter count in words: 82M, 1.56B; "n/a" when not logged (API models)."""
    if n is None or math.isnan(n):
        return "n/a"
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def _line(cells) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def _head(*names: str) -> list[str]:
    return [_line(names), "|" + "---|" * len(names)]


def cells_table(table: pd.DataFrame, metric: str) -> str:
    """The cells of one task x model; a column that no cell has a value for is left out."""
    dtype, unparsed = reduced(table), bool((table["unparsed_rate"] > 0).any())
    variant = bool((table["variant"] != "").any())
    agree = "agreement" in table and bool(table["agreement"].notna().any())
    # the first consistency measure the cells logged (runs from before them have none)
    kind = next((c for c in CONSISTENCY if c[1] in table and table[c[1]].notna().any()), None)
    lines = _head("arm", *(["variant"] if variant else []), *(["dtype"] if dtype else []),
                  "N labels", "runs", f"{metric} [95% interval]", "perplexity",
                  *(["unparsed replies"] if unparsed else []),
                  *(["agreement across seeds"] if agree else []), *([kind[0]] if kind else []),
                  "USD / 1k pred.", "train USD", "trainable params", "Pareto")
    ordered = table.assign(_dtype=table["dtype"].map(dtype_rank))
    for _, r in ordered.sort_values(["arm", "n_labels", "_dtype", "dtype"]).iterrows():
        lines.append(_line([
            r["arm"], *([r["variant"]] if variant else []), *([r["dtype"]] if dtype else []),
            int(r["n_labels"]), int(r["runs"]), quality(r), num(r["perplexity"]),
            *([num(r["unparsed_rate"], ".1%")] if unparsed else []),
            *([num(r["agreement"], ".0%")] if agree else []),
            *([" / ".join(num(r.get(c), spec) for c, spec in kind[2])] if kind else []),
            num(r["usd_per_1k"]), num(r["train_usd"]), num(r["trainable_params"]),
            "yes" if r["pareto"] else ""]))
    return "\n".join(lines)


def precision_table(effect: pd.DataFrame, metric: str) -> list[str]:
    """Reduced-precision cells beside their float32 twins."""
    lines = [f"**Precision** ({metric} of each reduced-precision cell against the same cell at "
             "float32)", "",
             *_head("arm", "N labels", "dtype", f"{metric} float32", metric, "change",
                    "clear at 95% (paired)", "perplexity float32 → dtype",
                    "USD / 1k pred. float32 → dtype")]
    for _, r in effect.iterrows():
        ref = {"quality": r["quality_ref"], "quality_ci": r["quality_ci_ref"]}
        lines.append(_line([r["arm"], int(r["n_labels"]), r["dtype"], quality(ref), quality(r),
                            num(r["delta"], "+.3f"), "yes" if r["clear"] else "",
                            f"{num(r['perplexity_ref'])} → {num(r['perplexity'])}",
                            f"{num(r['usd_per_1k_ref'])} → {num(r['usd_per_1k'])}"]))
    return [*lines, ""]


def scale_table(scale: pd.DataFrame, metric: str) -> list[str]:
    """One task's quality per model x arm, models by parameter count, API models last."""
    arms = arm_order(scale)
    lines = [f"**Model scale** ({metric} and its 95% interval, [USD per 1k predictions]; each "
             "arm at its largest label budget; models by parameter count, those without one "
             "(API models) last; — : not run. Bits per byte: the gold answers' log-likelihood "
             "under the prompt with the fewest demos, per UTF-8 byte, which unlike per-token "
             "perplexity compares models with different tokenizers)", "",
             *_head("model", "params", "bits per byte", *arms)]
    for (model, dtype), rows in scale.groupby(["model", "dtype"], sort=False):
        by_arm = rows.set_index("arm")
        prompts = rows[~rows["fit"].astype(bool)].sort_values("n_labels")["bits_per_byte"]
        bpb = prompts.dropna().iloc[0] if prompts.notna().any() else math.nan
        lines.append(_line([label(model, dtype), params(rows["model_params"].iloc[0]), num(bpb),
                            *(f"{quality(by_arm.loc[a])} [{num(by_arm.loc[a, 'usd_per_1k'])}]"
                              if a in by_arm.index else "—" for a in arms)]))
    return [*lines, ""]


def sensitivity_table(spread: pd.DataFrame, metric: str) -> list[str]:
    """The prompt-sensitivity table (layout and ranking columns when some runs used the chat
    template or a calibration), and the calibrated ranking's table."""
    dtype = reduced(spread)
    chat = "chat" in spread and bool(spread["chat"].eq("true").any())
    ranked = "calibration" in spread and bool(spread["calibration"].isin(["contextual", "pmi"])
                                              .any())
    extra = (["layout"] if chat else []) + (["ranked by"] if ranked else [])

    def layout(r) -> list[str]:
        return ([("chat" if r["chat"] == "true" else "plain")] if chat else []) + \
            ([r["calibration"] or "n/a"] if ranked else [])

    lines = ["**Prompt sensitivity** (every run of the prompting arms: templates x demo orders x "
             f"seeds; {metric})", "",
             *_head("arm", *(["dtype"] if dtype else []), "k", *extra, "runs", "templates",
                    "orders", "seeds", "min", "max", "std", "best template", "worst template",
                    "gap between template means")]
    for _, r in spread.iterrows():
        lines.append(_line([r["arm"], *([r["dtype"]] if dtype else []), int(r["n_labels"]),
                            *layout(r), r["runs"], r["templates"], r["orders"], r["seeds"],
                            *(num(r[c], ".3f") for c in ("min", "max", "std")),
                            r["best_template"], r["worst_template"],
                            num(r["template_gap"], ".3f")]))
    lines.append("")
    if "mean_accuracy_contextual" in spread and spread["mean_accuracy_contextual"].notna().any():
        lines += ["The same runs ranked with calibration (the same forward passes): mean and "
                  "standard deviation over the runs; agreement: the share of test examples "
                  "every run answered alike.", "",
                  *_head("arm", "k", *extra, "runs", "mean", "std", "contextual: mean", "std",
                         "PMI: mean", "std", "agreement")]
        stats = ("mean", "std", "mean_accuracy_contextual", "std_accuracy_contextual",
                 "mean_accuracy_pmi", "std_accuracy_pmi")
        lines += [_line([r["arm"], int(r["n_labels"]), *layout(r), r["runs"],
                         *(num(r[c], ".3f") for c in stats), num(r["agreement"], ".0%")])
                  for _, r in spread.iterrows()]
        lines.append("")
    return lines


def break_even_table(crossings: pd.DataFrame, metric: str) -> list[str]:
    """Each fine-tuned x prompting pair's costs, break-even and the quality each buys."""
    lines = _head("fine-tuned", "prompting", f"{metric}, fine-tuned vs prompting",
                  "up-front USD", "USD per call, fine-tuned", "USD per call, prompting",
                  "cheaper after")
    for _, r in crossings.iterrows():
        after = ("never (its calls cost as much or more)" if r["break_even_predictions"] ==
                 math.inf else f"{r['break_even_predictions']:,.0f} predictions")
        lines.append(_line([r["fine_tuned"], r["prompting"],
                            f"{num(r['quality_fine_tuned'], '.3f')} vs "
                            f"{num(r['quality_prompting'], '.3f')}", num(r["up_front_usd"]),
                            num(r["per_call_usd_fine_tuned"]), num(r["per_call_usd_prompting"]),
                            after]))
    return [*lines, ""]


def volume_table(ranked: pd.DataFrame, volume: int, metric: str) -> list[str]:
    """Every arm's total cost at the user's volume, cheapest first."""
    return [f"**At {volume:,} predictions** (`--volume`), cheapest first", "",
            *_head("arm", "total USD", "up-front USD", "USD per call", metric),
            *(_line([r["arm_name"], num(r["total_usd"]), num(r["up_front"]), num(r["per_call"]),
                     num(r["quality"], ".3f")]) for _, r in ranked.iterrows()), ""]
