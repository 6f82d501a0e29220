"""Files a run leaves in MLflow: the predictions table, and the confusion matrix
(classification) or a few outputs to read (generation). One layout for every backend."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

UNPARSED = "<unparsed>"  # a reply that named no label: a prediction, never a class


def log_predictions(task_type: str, label_names: list[str], texts: list[str],
                    rows: list[dict], title: str) -> None:
    """The run's predictions (`rows` from a backend, in test-split order) as files."""
    if task_type == "classification":
        log_classification(label_names, texts, rows, title)
    else:
        log_generation(texts, rows, title)


def predictions_table(label_names: list[str], texts: list[str], rows: list[dict]) -> pd.DataFrame:
    """text, gold, predicted (`<unparsed>` where a reply named no label), and whatever else
    the backend recorded per example (a score and the gold log-prob, or the raw reply)."""
    names = [*label_names, UNPARSED]
    table = pd.DataFrame({
        "text": [texts[r["index"]] for r in rows],
        "gold": [label_names[r["label"]] for r in rows],
        "predicted": [names[-1 if r["predicted"] is None else r["predicted"]] for r in rows],
    })
    for extra in ("score", "gold_logprob", "reply"):
        if extra in rows[0]:
            table[extra] = [r[extra] for r in rows]
    return table


def confusion_matrix_figure(table: pd.DataFrame, label_names: list[str], title: str):
    size = max(6.0, 0.18 * len(label_names) + 4)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        table["gold"], table["predicted"], labels=label_names, ax=ax, colorbar=False,
        include_values=len(label_names) <= 20, xticks_rotation="vertical")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def log_classification(label_names: list[str], texts: list[str], rows: list[dict],
                       title: str) -> None:
    """predictions.csv and its confusion_matrix.png (with an `<unparsed>` column if needed)."""
    table = predictions_table(label_names, texts, rows)
    mlflow.log_text(table.to_csv(index=False), "predictions.csv")
    shown = [*label_names, *([UNPARSED] if (table["predicted"] == UNPARSED).any() else [])]
    fig = confusion_matrix_figure(table, shown, title)
    mlflow.log_figure(fig, "confusion_matrix.png")
    plt.close(fig)


def log_generation(texts: list[str], rows: list[dict], title: str, n_samples: int = 5) -> None:
    """predictions.csv (input, references, generated) and samples.md, a few outputs to read."""
    table = pd.DataFrame({
        "input": [texts[r["index"]] for r in rows],
        "references": [" ||| ".join(r["references"]) for r in rows],
        "generated": [r["generated"] for r in rows],
        "generated_tokens": [r["generated_tokens"] for r in rows],
    })
    mlflow.log_text(table.to_csv(index=False), "predictions.csv")
    lines = [f"# {title}", ""]
    for r in rows[:n_samples]:
        lines += [f"## Example {r['index']}", "", "**Input**", "",
                  "> " + texts[r["index"]].replace("\n", "\n> "), "",
                  "**Reference**: " + r["references"][0], "",
                  "**Generated**: " + (r["generated"] or "*(empty)*"), ""]
    mlflow.log_text("\n".join(lines), "samples.md")
