"""The report's input: one row per finished job run in MLflow, with what the report compares
(quality, label budget, cost) and what makes two runs the same cell."""

import json
import math
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

QUALITY = {"classification": "test/accuracy", "generation": "test/rougeL"}
REFERENCE_DTYPE = "float32"  # runs without the inference_dtype tag
COLUMNS = {  # report column -> MLflow metric
    "quality": None, "perplexity": "test/perplexity",
    "usd_per_1k": "cost/usd_per_1k_predictions", "train_usd": "cost/train_usd",
    "train_seconds": "cost/train_seconds", "trainable_params": "cost/trainable_params",
    "total_params": "cost/total_params",
    "unparsed_rate": "test/unparsed_rate",  # API models: replies that matched no label
}


def run_ids_from(results: Path) -> set[str]:
    """Run ids recorded by `pvf results_file=...` under a folder (the DVC run stage's outputs)."""
    return {json.loads(path.read_text())["run_id"] for path in results.rglob("metrics.json")}


def load_runs(tracking_uri: str, experiments: list[str] | None = None,
              filter_string: str = "", run_ids: set[str] | None = None) -> pd.DataFrame:
    """One row per FINISHED job run: tags, label budget, quality and cost metrics.
    `run_ids` keeps exactly those runs (stale runs of earlier studies stay out)."""
    client = MlflowClient(tracking_uri)
    found = client.search_experiments()
    ids = [e.experiment_id for e in found if not experiments or e.name in experiments]
    if not ids:
        return pd.DataFrame()
    status = "attributes.status = 'FINISHED'"
    query = f"{status} and {filter_string}" if filter_string else status
    rows = []
    for run in client.search_runs(ids, query, max_results=50000):
        tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
        if "arm" not in tags or tags.get("pvf_summary") == "true":
            continue
        if run_ids is not None and run.info.run_id not in run_ids:
            continue
        kind = "generation" if "test/rougeL" in metrics else "classification"
        fit = fitted(tags, metrics)
        row = {"run_id": run.info.run_id, "task": tags["task"], "model": tags["model"],
               "dtype": tags.get("inference_dtype") or REFERENCE_DTYPE,
               "arm": tags["arm"], "fit": fit, "seed": tags.get("seed"), "kind": kind,
               "prompt": tags.get("prompt") or params.get("task.prompt", ""),
               "template": params.get("task.template", ""),
               "order_seed": params.get("arm.order_seed", ""),
               "n_labels": n_labels(fit, metrics),
               "quality": metrics.get(QUALITY[kind], math.nan)}
        for column, key in COLUMNS.items():
            if key:
                row[column] = metrics.get(key, math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def fitted(tags: dict, metrics: dict) -> bool:
    """Whether the run's arm trained weights: its `fit` tag (the arm config's key); runs
    logged before that tag existed trained iff they trained on any token."""
    if "fit" in tags:
        return tags["fit"] == "true"
    return metrics.get("cost/train_tokens", 0) > 0


def n_labels(fit: bool, metrics: dict) -> int:
    """Labelled examples an arm touched (`data/n_labels`: train and validation if it trains,
    its demos if it prompts); runs logged before that metric count train or demos only."""
    if "data/n_labels" in metrics:
        return int(metrics["data/n_labels"])
    if fit:
        return int(metrics.get("data/n_train", 0))
    return int(metrics.get("fewshot/demos_used", 0))
