"""Files a run leaves in MLflow: the predictions table and the confusion matrix."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402


def predictions_table(texts: list[str], predictions: list[dict],
                      label_names: list[str]) -> pd.DataFrame:
    predictions = sorted(predictions, key=lambda p: p["index"])  # the test split's order
    return pd.DataFrame({
        "text": [texts[p["index"]] for p in predictions],
        "gold": [label_names[p["label"]] for p in predictions],
        "predicted": [label_names[p["predicted"]] for p in predictions],
        "score": [p["score"] for p in predictions],
        "gold_logprob": [p["gold_logprob"] for p in predictions],
    })


def confusion_matrix_figure(table: pd.DataFrame, label_names: list[str], title: str):
    size = max(6.0, 0.18 * len(label_names) + 4)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        table["gold"], table["predicted"], labels=label_names, ax=ax, colorbar=False,
        include_values=len(label_names) <= 20, xticks_rotation="vertical")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def log_classification_artifacts(texts, predictions, label_names, title: str) -> None:
    log_classification_table(predictions_table(texts, predictions, label_names), label_names,
                             title)


def log_classification_table(table: pd.DataFrame, label_names: list[str], title: str) -> None:
    """predictions.csv (a `gold` and a `predicted` column) and its confusion_matrix.png."""
    mlflow.log_text(table.to_csv(index=False), "predictions.csv")
    fig = confusion_matrix_figure(table, label_names, title)
    mlflow.log_figure(fig, "confusion_matrix.png")
    plt.close(fig)


def log_generation_artifacts(texts: list[str], rows: list[dict], title: str,
                             n_samples: int = 5) -> None:
    """predictions.csv (input, references, generated) and samples.md, a few outputs to read."""
    rows = sorted(rows, key=lambda r: r["index"])
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
