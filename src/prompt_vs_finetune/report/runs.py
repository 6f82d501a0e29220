"""The report's input: one row per finished job run in MLflow, with what the report compares
(quality, label budget, cost) and what makes two runs one cell. Runs logged by older pvf
versions lack some tags and metrics; the `_` helpers below fall back for them."""

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


def run_ids_from(results: Path) -> set[str]:
    """Run ids recorded by `pvf results_file=...` under a folder (the DVC run stage's outputs)."""
    return {json.loads(path.read_text())["run_id"] for path in results.rglob("metrics.json")}


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
    """A run as the report's row: its tags, label budget, quality and cost metrics."""
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    metric, fit = _quality_metric(tags, metrics), _fit(tags, metrics)
    test_set = params.get("data.test_sha256", "")
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
            "n_labels": _n_labels(fit, metrics), "n_classes": _n_classes(metrics, params),
            "quality": metrics.get(metric, math.nan),
            "study": tags.get("study", ""), "test_set": test_set,
            "hpo_trial": tags.get("hpo_trial") == "true",
            # one experiment: the same config but the seeds, on the same test set
            "cell": f"{tags.get('cell') or _legacy_cell(tags, fit, metrics)}/{test_set}",
            "params": {k: v for k, v in params.items() if not k.startswith(NOT_VARIANTS)},
            "identity": identity(run), "started": run.info.start_time or 0,
            "artifact_uri": run.info.artifact_uri,
            **{column: metrics.get(key, math.nan) for column, key in COLUMNS.items()}}


def identity(run) -> str:
    """What makes two runs the same job, so the second is a rerun and no new seed: the same
    config (seed included: `config_hash`), data (the splits' and demos' hashes) and code
    (`pvf.code`). A run without those tags (older pvf) is only itself."""
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


def _legacy_cell(tags: dict, fit: bool, metrics: dict) -> str:
    """The cell of a run from before the `cell` tag: a name match."""
    return "|".join([tags["task"], tags["model"], tags.get("inference_dtype", REFERENCE_DTYPE),
                     tags["arm"], str(_n_labels(fit, metrics))])


def _fit(tags: dict, metrics: dict) -> bool:
    """Whether the arm trained weights: its `fit` tag, else whether it trained on any token."""
    if "fit" in tags:
        return tags["fit"] == "true"
    return metrics.get("cost/train_tokens", 0) > 0


def _n_labels(fit: bool, metrics: dict) -> int:
    """Labelled examples the arm touched (`data/n_labels`), else its train examples or demos."""
    if "data/n_labels" in metrics:
        return int(metrics["data/n_labels"])
    return int(metrics.get("data/n_train" if fit else "fewshot/demos_used", 0))


def _quality_metric(tags: dict, metrics: dict) -> str:
    """The metric the run's arms are ranked by: its task type's (the `quality_metric` tag),
    else ROUGE-L where logged and accuracy otherwise."""
    return tags.get(QUALITY_TAG) or ("test/rougeL" if "test/rougeL" in metrics
                                     else "test/accuracy")


def _n_classes(metrics: dict, params: dict) -> float:
    """`data/n_classes`, else the labels the config named (`task.labels.*`); NaN for none."""
    if "data/n_classes" in metrics:
        return float(metrics["data/n_classes"])
    return float(sum(key.startswith("task.labels.") for key in params)) or math.nan
