"""The report's input: one row per finished job run in MLflow, with what the report compares
(quality, label budget, cost) and what makes two runs the same cell."""

import json
import math
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from ..tracking.keys import PER_EXAMPLE_FILE

QUALITY_TAG = "quality_metric"  # the task type's headline metric, as the job tagged it
REFERENCE_DTYPE = "float32"  # runs without the inference_dtype tag
COLUMNS = {  # report column -> MLflow metric
    "quality": None, "perplexity": "test/perplexity",
    "usd_per_1k": "cost/usd_per_1k_predictions", "train_usd": "cost/train_usd",
    "train_seconds": "cost/train_seconds", "trainable_params": "cost/trainable_params",
    "total_params": "cost/total_params",
    "unparsed_rate": "test/unparsed_rate",  # API models: replies that matched no label
    "tokens_per_call": "cost/tokens_per_prediction",
    "usd_per_1k_measured": "cost/usd_per_1k_predictions_measured",
    "bits_per_byte": "test/bits_per_byte",
    "teacher_usd": "cost/teacher_usd",  # the hybrid arm's teacher: up-front, like training
    "ece": "test/ece", "accuracy_contextual": "test/accuracy_contextual",
    "accuracy_pmi": "test/accuracy_pmi", "repeated_ngram_rate": "test/repeated_ngram_rate",
    "hit_max_new_tokens": "test/hit_max_new_tokens", "length_words_std": "test/length_words_std",
}
# what tells two cells apart in a table, not what they are about
NOT_VARIANTS = ("seed", "data_seed", "paths.", "hydra.", "mlflow.", "results_file", "data.",
                "fewshot.", "resume", "verbose", "arm.order_seed", "decoding.seed", "study")


def run_ids_from(results: Path) -> set[str]:
    """Run ids recorded by `pvf results_file=...` under a folder (the DVC run stage's outputs)."""
    return {json.loads(path.read_text())["run_id"] for path in results.rglob("metrics.json")}


def load_runs(tracking_uri: str, experiments: list[str] | None = None,
              filter_string: str = "", run_ids: set[str] | None = None) -> pd.DataFrame:
    """One row per FINISHED job run: tags, label budget, quality and cost metrics.
    `run_ids` keeps exactly those runs (stale runs of earlier studies stay out). Report runs
    (`pvf_summary`) and the parent runs of sweeps and studies (`pvf.parent`) are no jobs."""
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
        if ("arm" not in tags or tags.get("pvf_summary") == "true"
                or tags.get("pvf.parent") == "true"):
            continue
        if run_ids is not None and run.info.run_id not in run_ids:
            continue
        metric = quality_metric(tags, metrics)
        fit = fitted(tags, metrics)
        test_set = params.get("data.test_sha256", "")
        row = {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
               "parent_run_id": tags.get("mlflow.parentRunId", ""),
               "task": tags["task"], "model": tags["model"],
               "dtype": tags.get("inference_dtype") or REFERENCE_DTYPE,
               "arm": tags["arm"], "fit": fit, "seed": tags.get("seed"), "metric": metric,
               "prompt": tags.get("prompt") or params.get("task.prompt", ""),
               "chat": tags.get("chat", "false"),  # prompt.chat: the chat template's layout
               # random weights (model.tiny; runs from before the tag: the model's name)
               "pretrained": tags.get("pretrained", str(tags["model"] != "tiny").lower())
               == "true",
               "calibration": tags.get("calibration", ""),  # what test/accuracy ranked by
               "template": params.get("task.template", ""),
               "order_seed": params.get("arm.order_seed", ""),
               "n_labels": n_labels(fit, metrics),
               "n_classes": n_classes(metrics, params),
               "quality": metrics.get(metric, math.nan),
               "study": tags.get("study", ""), "test_set": test_set,
               "hpo_trial": tags.get("hpo_trial") == "true",
               # one experiment: the same config but the seeds, on the same test set; runs
               # from before the `cell` tag fall back to a name match
               "cell": f"{tags.get('cell') or legacy_cell(tags, fit, metrics)}/{test_set}",
               "params": {k: v for k, v in params.items() if not k.startswith(NOT_VARIANTS)},
               "identity": identity(run), "started": run.info.start_time or 0,
               "artifact_uri": run.info.artifact_uri}
        for column, key in COLUMNS.items():
            if key:
                row[column] = metrics.get(key, math.nan)
        rows.append(row)
    runs = pd.DataFrame(rows)
    if runs.empty:
        return runs
    logged = per_example(runs)
    return runs.assign(examples=logged.map(lambda d: None if d is None else d[0]),
                       predictions=logged.map(lambda d: None if d is None else d[1]))


def identity(run) -> str:
    """What makes two runs the same job, so the second is a rerun and no new seed: the same
    config (seed included: `config_hash`), the same data (the splits' and demos' hashes) and
    the same code (`pvf.code`, the package's source hash). A run without those tags (older
    pvf) is only itself."""
    tags, params = run.data.tags, run.data.params
    if not (tags.get("config_hash") and tags.get("pvf.code")):
        return run.info.run_id
    data = [params.get(key, "") for key in ("data.train_sha256", "data.validation_sha256",
                                            "data.test_sha256", "fewshot.demos_sha256")]
    return "|".join([tags["config_hash"], tags["pvf.code"], *data])


def latest_of_identical(runs: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """(the runs with each identical rerun replaced by the latest of its kind, how many were
    replaced): a job run twice is one seed, not two agreeing ones."""
    if runs.empty:
        return runs, 0
    kept = runs.sort_values("started").drop_duplicates("identity", keep="last")
    return runs[runs.index.isin(kept.index)], len(runs) - len(kept)


def legacy_cell(tags: dict, fit: bool, metrics: dict) -> str:
    return "|".join([tags["task"], tags["model"], tags.get("inference_dtype", REFERENCE_DTYPE),
                     tags["arm"], str(n_labels(fit, metrics))])


def per_example(runs: pd.DataFrame) -> pd.Series:
    """Each run's (per-example quality: an array in test-split order, its predictions: a list
    in the same order, or None where not logged), or None where the run logged neither (runs
    from before per_example.json, API runs of an older version)."""
    def load(uri: str):
        parts = urlparse(uri)
        local = Path(parts.path) / PER_EXAMPLE_FILE if parts.scheme in ("", "file") else None
        try:
            if local is not None:  # a local store: read the file, no download machinery
                data = json.loads(local.read_text()) if local.is_file() else None
            else:
                data = mlflow.artifacts.load_dict(f"{uri}/{PER_EXAMPLE_FILE}")
        except Exception:  # noqa: BLE001 - absent or unreadable: the report falls back
            data = None
        if data is None:
            return None
        return np.asarray(data["values"], dtype=float), data.get("predictions")

    return runs["artifact_uri"].map(load)


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


def quality_metric(tags: dict, metrics: dict) -> str:
    """The metric a run's arms are ranked by: its task type's (the `quality_metric` tag), or
    for runs from before the tag, ROUGE-L where logged and accuracy otherwise."""
    return tags.get(QUALITY_TAG) or ("test/rougeL" if "test/rougeL" in metrics
                                     else "test/accuracy")


def n_classes(metrics: dict, params: dict) -> float:
    """A run's number of classes: `data/n_classes`, else the labels its config named
    (`task.labels.<label>` params); NaN when unknown and for a task without labels."""
    if "data/n_classes" in metrics:
        return float(metrics["data/n_classes"])
    named = sum(key.startswith("task.labels.") for key in params)
    return float(named) if named else math.nan
