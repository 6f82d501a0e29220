"""The report's input: one row per finished job run in MLflow, with what the report compares
(quality, label budget, cost) and what makes two runs one cell."""

import json
import math
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from ..tracking.keys import PARENT_RUN_TAG, PARENT_TAG, PER_EXAMPLE_FILE, QUALITY_TAG

REFERENCE_DTYPE = "float32"  # runs without the inference_dtype tag
COLUMNS = {  # report column -> MLflow metric (besides `quality`: the run's headline metric)
    "perplexity": "test/perplexity", "usd_per_1k": "cost/usd_per_1k_predictions",
    "train_usd": "cost/train_usd", "train_seconds": "cost/train_seconds",
    "trainable_params": "cost/trainable_params", "total_params": "cost/total_params",
    "unparsed_rate": "test/unparsed_rate",  # API models: replies that matched no label
    "tokens_per_call": "cost/tokens_per_prediction",
    "usd_per_1k_measured": "cost/usd_per_1k_predictions_measured",
    "bits_per_byte": "test/bits_per_byte",
    "teacher_usd": "cost/teacher_usd",  # the hybrid arm's teacher: up-front, like training
    "ece": "test/ece", "accuracy_contextual": "test/accuracy_contextual",
    "accuracy_pmi": "test/accuracy_pmi", "repeated_ngram_rate": "test/repeated_ngram_rate",
    "hit_max_new_tokens": "test/hit_max_new_tokens", "length_words_std": "test/length_words_std",
}
# params that never tell two cells apart in a table
NOT_VARIANTS = ("seed", "data_seed", "paths.", "hydra.", "mlflow.", "results_file", "data.",
                "fewshot.", "resume", "verbose", "arm.order_seed", "decoding.seed", "study")


def load_runs(tracking_uri: str, experiments: list[str] | None = None,
              filter_string: str = "", run_ids: set[str] | None = None) -> pd.DataFrame:
    """One row per FINISHED job run; `run_ids` keeps exactly those (stale runs of earlier
    studies stay out). Report runs (`pvf_summary`) and the parent runs of sweeps and studies
    (`pvf.parent`) are no jobs."""
    client = MlflowClient(tracking_uri)
    ids = [e.experiment_id for e in client.search_experiments()
           if not experiments or e.name in experiments]
    if not ids:
        return pd.DataFrame()
    query = " and ".join(filter(None, ["attributes.status = 'FINISHED'", filter_string]))
    runs = pd.DataFrame([
        _row(run) for run in client.search_runs(ids, query, max_results=50000)
        if "arm" in run.data.tags and "true" not in (run.data.tags.get("pvf_summary"),
                                                      run.data.tags.get(PARENT_TAG))
        and (run_ids is None or run.info.run_id in run_ids)])
    if runs.empty:
        return runs
    logged = runs["artifact_uri"].map(_per_example)
    return runs.assign(examples=logged.map(lambda d: None if d is None else d[0]),
                       predictions=logged.map(lambda d: None if d is None else d[1]))


def _row(run) -> dict:
    """A run as the report's row. Runs of older pvf versions lack some tags and metrics: the
    fallbacks below read what they logged instead."""
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    # whether the arm trained weights; its headline metric (the task type's)
    fit = tags["fit"] == "true" if "fit" in tags else metrics.get("cost/train_tokens", 0) > 0
    metric = tags.get(QUALITY_TAG) or ("test/rougeL" if "test/rougeL" in metrics
                                       else "test/accuracy")
    n_classes = metrics.get("data/n_classes",  # else the labels the config named; NaN: none
                            sum(key.startswith("task.labels.") for key in params) or math.nan)
    # labelled examples the arm touched, else its train examples or demos
    n_labels = int(metrics.get("data/n_labels", metrics.get("data/n_train" if fit
                                                             else "fewshot/demos_used", 0)))
    test_set = params.get("data.test_sha256", "")
    # one experiment: the same config but the seeds, on the same test set (a run from before
    # the `cell` tag: a name match)
    cell = tags.get("cell") or "|".join([tags["task"], tags["model"], tags.get(
        "inference_dtype", REFERENCE_DTYPE), tags["arm"], str(n_labels)])
    return {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
            "parent_run_id": tags.get(PARENT_RUN_TAG, ""),
            "task": tags["task"], "model": tags["model"],
            "dtype": tags.get("inference_dtype") or REFERENCE_DTYPE,
            "arm": tags["arm"], "fit": fit, "seed": tags.get("seed"), "metric": metric,
            "prompt": tags.get("prompt") or params.get("task.prompt", ""),
            "chat": tags.get("chat", "false"),  # prompt.chat: the chat template's layout
            # random weights (model.tiny; runs from before the tag: the model's name)
            "pretrained": tags.get("pretrained", str(tags["model"] != "tiny").lower()) == "true",
            "calibration": tags.get("calibration", ""),  # what test/accuracy ranked by
            "order_seed": params.get("arm.order_seed", ""),
            "n_labels": n_labels, "n_classes": float(n_classes),
            "quality": metrics.get(metric, math.nan),
            "study": tags.get("study", ""), "test_set": test_set,
            "hpo_trial": tags.get("hpo_trial") == "true",
            "cell": f"{cell}/{test_set}",
            "params": {k: v for k, v in params.items() if not k.startswith(NOT_VARIANTS)},
            "identity": identity(run), "started": run.info.start_time or 0,
            "artifact_uri": run.info.artifact_uri,
            **{column: metrics.get(key, math.nan) for column, key in COLUMNS.items()}}


def identity(run) -> str:
    """What makes two runs the same job, so the second is a rerun and no new seed: the same
    config (seed included), data and code. A run without those tags (older pvf) is only
    itself."""
    tags, params = run.data.tags, run.data.params
    if not (tags.get("config_hash") and tags.get("pvf.code")):
        return run.info.run_id
    data = [params.get(key, "") for key in ("data.train_sha256", "data.validation_sha256",
                                            "data.test_sha256", "fewshot.demos_sha256")]
    return "|".join([tags["config_hash"], tags["pvf.code"], *data])


def latest_of_identical(runs: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """(the runs with each identical rerun replaced by the latest of its kind, how many were
    replaced): a job run twice is one seed, not two."""
    if runs.empty:
        return runs, 0
    kept = runs.sort_values("started").drop_duplicates("identity", keep="last")
    return runs[runs.index.isin(kept.index)], len(runs) - len(kept)


def _per_example(artifact_uri: str) -> tuple[np.ndarray, list | None] | None:
    """(each test example's quality in test-split order, the predictions or None), or None
    where the run logged neither (runs from before per_example.json)."""
    parts = urlparse(artifact_uri)
    try:
        if parts.scheme in ("", "file"):  # a local store: read the file, no download machinery
            data = json.loads((Path(parts.path) / PER_EXAMPLE_FILE).read_text())
        else:
            data = mlflow.artifacts.load_dict(f"{artifact_uri}/{PER_EXAMPLE_FILE}")
        return np.asarray(data["values"], dtype=float), data.get("predictions")
    except Exception:  # noqa: BLE001 - absent or unreadable: the report falls back
        return None
