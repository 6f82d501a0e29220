"""The report's tables in markdown: the cells of a task x model, the precision comparison,
the model-scale grid and the prompt-sensitivity spread."""

import pandas as pd

from .stats import arm_order, dtype_rank, reduced
from .words import label, num, params, quality


def cells_table(table: pd.DataFrame, metric: str) -> str:
    """The cells of one task x model. A dtype column only when some cell is not float32, an
    unparsed-reply column only when some reply named no label (API models)."""
    dtype, unparsed = reduced(table), bool((table["unparsed_rate"] > 0).any())
    variant = bool((table["variant"] != "").any())
    agree = "agreement" in table and bool(table["agreement"].notna().any())
    # the first consistency measure the cells logged (runs from before them have none)
    kind = next((c for c in CONSISTENCY if c[1] in table and table[c[1]].notna().any()), None)
    steady = kind is not None
    head = ["arm", *(["variant"] if variant else []), *(["dtype"] if dtype else []),
            "N labels", "runs", f"{metric} [95% interval]", "perplexity",
            *(["unparsed replies"] if unparsed else []),
            *(["agreement across seeds"] if agree else []),
            *([kind[0]] if steady else []),
            "USD / 1k pred.", "train USD", "trainable params", "Pareto"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ordered = table.assign(_dtype=table["dtype"].map(dtype_rank))
    for _, r in ordered.sort_values(["arm", "n_labels", "_dtype", "dtype"]).iterrows():
        cells = [r["arm"], *([r["variant"]] if variant else []),
                 *([r["dtype"]] if dtype else []), str(int(r["n_labels"])),
                 str(int(r["runs"])), quality(r), num(r["perplexity"]),
                 *([num(r["unparsed_rate"], ".1%")] if unparsed else []),
                 *([num(r["agreement"], ".0%")] if agree else []),
                 *([consistency(r, kind)] if steady else []),
                 num(r["usd_per_1k"]), num(r["train_usd"]), num(r["trainable_params"]),
                 "yes" if r["pareto"] else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# a consistency column: (its title, the column that says the cells have it, (column, format)s)
CONSISTENCY = (
    ("ECE", "ece", (("ece", ".3f"),)),  # rank classification: calibration error
    ("repeated trigrams / cut at max tokens / length sd (words)", "repeated_ngram_rate",
     (("repeated_ngram_rate", ".1%"), ("hit_max_new_tokens", ".0%"),
      ("length_words_std", ".1f"))),  # generation: degeneration and length spread
)


def consistency(r, kind) -> str:
    """A cell's consistency numbers, as the column `kind` (a CONSISTENCY entry) shows them."""
    return " / ".join(num(r.get(column), fmt) for column, fmt in kind[2])


def precision_table(effect: pd.DataFrame, metric: str) -> list[str]:
    """Reduced-precision cells beside their float32 twins."""
    lines = [f"**Precision** ({metric} of each reduced-precision cell against the same cell at "
             "float32)", "",
             f"| arm | N labels | dtype | {metric} float32 | {metric} | change | clear at 95% "
             "(paired) | perplexity float32 → dtype | USD / 1k pred. float32 → dtype |",
             "|" + "---|" * 9]
    for _, r in effect.iterrows():
        ref = {"quality": r["quality_ref"], "quality_ci": r["quality_ci_ref"]}
        lines.append(f"| {r['arm']} | {int(r['n_labels'])} | {r['dtype']} | {quality(ref)} | "
                     f"{quality(r)} | {num(r['delta'], '+.3f')} | "
                     f"{'yes' if r['clear'] else ''} | {num(r['perplexity_ref'])} → "
                     f"{num(r['perplexity'])} | {num(r['usd_per_1k_ref'])} → "
                     f"{num(r['usd_per_1k'])} |")
    return [*lines, ""]


def scale_table(scale: pd.DataFrame, metric: str) -> list[str]:
    """One task's quality per model x arm, models by parameter count, API models last."""
    arms = arm_order(scale)
    lines = [f"**Model scale** ({metric} and its 95% interval, [USD per 1k predictions]; each "
             "arm at its largest label budget; models by parameter count, those without one "
             "(API models) last; — : not run. Bits per byte: the gold answers' log-likelihood "
             "under the prompt with the fewest demos, per UTF-8 byte, which unlike per-token "
             "perplexity compares models with different tokenizers)", "",
             "| model | params | bits per byte | " + " | ".join(arms) + " |",
             "|" + "---|" * (3 + len(arms))]
    for (model, dtype), rows in scale.groupby(["model", "dtype"], sort=False):
        by_arm = rows.set_index("arm")
        cells = [f"{quality(by_arm.loc[a])} [{num(by_arm.loc[a, 'usd_per_1k'])}]"
                 if a in by_arm.index else "—" for a in arms]
        prompts = rows[~rows["fit"].astype(bool)].sort_values("n_labels")["bits_per_byte"]
        bpb = prompts.dropna().iloc[0] if prompts.notna().any() else float("nan")
        lines.append(f"| {label(model, dtype)} | {params(rows['model_params'].iloc[0])} | "
                     f"{num(bpb)} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def sensitivity_table(spread: pd.DataFrame, metric: str) -> list[str]:
    """The prompt-sensitivity table, shown when a cell pools runs beyond its seeds. A layout
    column when some runs used the chat template, a ranking column when some ranked by a
    calibration."""
    dtype = reduced(spread)
    chat = bool(spread["chat"].eq("true").any()) if "chat" in spread else False
    ranked = bool(spread["calibration"].isin(["contextual", "pmi"]).any()) \
        if "calibration" in spread else False
    extra = (["layout"] if chat else []) + (["ranked by"] if ranked else [])
    lines = ["**Prompt sensitivity** (every run of the prompting arms: templates x demo orders x "
             f"seeds; {metric})", "",
             f"| arm | {'dtype | ' if dtype else ''}k | "
             + "".join(f"{name} | " for name in extra)
             + "runs | templates | orders | seeds | min "
             "| max | std | best template | worst template | gap between template means |",
             "|" + "---|" * (12 + dtype + len(extra))]
    for _, r in spread.iterrows():
        shown = _layout(r, chat, ranked)
        lines.append(f"| {r['arm']} | {r['dtype'] + ' | ' if dtype else ''}"
                     f"{int(r['n_labels'])} | " + "".join(f"{v} | " for v in shown)
                     + f"{r['runs']} | {r['templates']} | "
                     f"{r['orders']} | {r['seeds']} | {num(r['min'], '.3f')} | "
                     f"{num(r['max'], '.3f')} | {num(r['std'], '.3f')} | "
                     f"{r['best_template']} | {r['worst_template']} | "
                     f"{num(r['template_gap'], '.3f')} |")
    lines.append("")
    if "mean_accuracy_contextual" in spread and spread["mean_accuracy_contextual"].notna().any():
        lines += ["The same runs ranked with calibration (the same forward passes): mean and "
                  "standard deviation over the runs; agreement: the share of test examples "
                  "every run answered alike.", "",
                  "| arm | k | " + "".join(f"{name} | " for name in extra)
                  + "runs | mean | std | contextual: mean | std | PMI: mean | std "
                  "| agreement |", "|" + "---|" * (10 + len(extra))]
        for _, r in spread.iterrows():
            shown = _layout(r, chat, ranked)
            lines.append(f"| {r['arm']} | {int(r['n_labels'])} | "
                         + "".join(f"{v} | " for v in shown) + f"{r['runs']} | "
                         f"{num(r['mean'], '.3f')} | {num(r['std'], '.3f')} | "
                         f"{num(r['mean_accuracy_contextual'], '.3f')} | "
                         f"{num(r['std_accuracy_contextual'], '.3f')} | "
                         f"{num(r['mean_accuracy_pmi'], '.3f')} | "
                         f"{num(r['std_accuracy_pmi'], '.3f')} | "
                         f"{num(r['agreement'], '.0%')} |")
        lines.append("")
    return lines


def _layout(r, chat: bool, ranked: bool) -> list[str]:
    """A sensitivity row's layout and ranking cells, for the columns shown."""
    return ([("chat" if r["chat"] == "true" else "plain")] if chat else []) + \
        ([r["calibration"] or "n/a"] if ranked else [])


def break_even_table(crossings: pd.DataFrame, metric: str) -> list[str]:
    """Each fine-tuned x prompting pair: up-front and per-call cost, the break-even, and the
    quality each buys (a "never cheaper" means nothing without it)."""
    lines = [f"| fine-tuned | prompting | {metric}, fine-tuned vs prompting | up-front USD | "
             "USD per call, fine-tuned | USD per call, prompting | cheaper after |",
             "|" + "---|" * 7]
    for _, r in crossings.iterrows():
        after = ("never (its calls cost as much or more)" if r["break_even_predictions"] ==
                 float("inf") else f"{r['break_even_predictions']:,.0f} predictions")
        lines.append(f"| {r['fine_tuned']} | {r['prompting']} | "
                     f"{num(r['quality_fine_tuned'], '.3f')} vs "
                     f"{num(r['quality_prompting'], '.3f')} | {num(r['up_front_usd'])} | "
                     f"{num(r['per_call_usd_fine_tuned'])} | {num(r['per_call_usd_prompting'])}"
                     f" | {after} |")
    return [*lines, ""]


def volume_table(ranked: pd.DataFrame, volume: int, metric: str) -> list[str]:
    """Every arm's total cost at the user's volume, cheapest first."""
    lines = [f"**At {volume:,} predictions** (`--volume`), cheapest first", "",
             f"| arm | total USD | up-front USD | USD per call | {metric} |", "|" + "---|" * 5]
    for _, r in ranked.iterrows():
        lines.append(f"| {r['arm_name']} | {num(r['total_usd'])} | {num(r['up_front'])} | "
                     f"{num(r['per_call'])} | {num(r['quality'], '.3f')} |")
    return [*lines, ""]
