"""The MLflow store: the experiment a job logs to (created once, even by parallel jobs), its
saved views of the runs table, and system metrics."""

import hashlib
import json
import os
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import mlflow
from filelock import FileLock

from .keys import dashboard_metrics
from .secrets import redact

# The experiment's kind, which MLflow 3's UI reads where its side-bar toggle (remembered per
# browser) or a link's `?workflowType=` does not decide (scripts/check_mlflow_ui.py)
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# MLflow 3's saved views of an experiment's runs table are experiment tags with this prefix:
# {name, createdAt, updatedAt, state}, the state being the table's search and columns as JSON
SAVED_VIEW_TAG = "mlflow.sharedViewState."
SYSTEM_METRICS_INTERVAL_S = 5  # MLflow's default is 10; MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL


def store_lock(tracking_uri: str) -> FileLock:
    """A lock for what parallel jobs must create once: beside a sqlite database, else in the
    temp folder per store (a server shared by jobs on one machine)."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(f"{db}.lock", timeout=600)
    digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
    return FileLock(str(Path(tempfile.gettempdir()) / f"pvf-mlflow-{digest}.lock"), timeout=600)


def use_experiment(tracking_uri: str, name: str, tags: dict[str, str] | None = None):
    """Point mlflow at the store and experiment, creating them if needed, and give the
    experiment those of `tags` (and EXPERIMENT_KIND) it lacks (a tag someone changed stays
    theirs). Under a lock: parallel jobs creating one sqlite store or experiment corrupt it."""
    import requests

    mlflow.set_tracking_uri(tracking_uri)
    if tracking_uri.startswith(("http://", "https://")):
        try:  # one quick request: MLflow's own client retries for minutes
            requests.get(tracking_uri.rstrip("/") + "/health", timeout=10)
        except requests.RequestException as err:
            raise ConnectionError(f"{redact(tracking_uri)} cannot be reached "
                                  f"({type(err).__name__})") from err
    with store_lock(tracking_uri) if tracking_uri.startswith("sqlite:///") else nullcontext():
        experiment = mlflow.set_experiment(name)
        for key, value in (EXPERIMENT_KIND | (tags or {})).items():
            if key not in experiment.tags:
                mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
    return experiment


def dashboard_views(task_type: str) -> dict[str, str]:
    """Two saved views of the runs table (its `Views` menu): the job runs with the comparison's
    metrics, best first; and the same averaged over seeds (grouped by the tag `variant`)."""
    metrics = [f"metrics.`{key}`" for key in dashboard_metrics(task_type)]
    state = {"searchFilter": "tags.`pvf.parent` IS NULL", "orderByKey": metrics[0],
             "orderByAsc": False,
             "selectedColumns": ["attributes.`Dataset`", "attributes.`Models`", *metrics],
             # the metrics right after the run's name and date, not A-Z after the wide columns
             "columnOrder": ["attributes.`Run Name`", "runDateAndNestInfo", *metrics,
                             "attributes.`Dataset`", "duration", "attributes.`Models`"],
             "runsHiddenMode": "SHOW_ALL"}
    grouped = {**state, "groupBy": {"aggregateFunction": "average", "groupByKeys": [
        {"mode": "tag", "groupByData": "variant"}]}}
    now = int(time.time() * 1000)
    return {SAVED_VIEW_TAG + view_id: json.dumps({"name": name, "createdAt": now,
                                                  "updatedAt": now, "state": json.dumps(view)})
            for view_id, name, view in (("pvf-runs", "pvf: compare runs", state),
                                        ("pvf-variants", "pvf: mean over seeds", grouped))}


def system_metrics_on(wanted: bool | None) -> bool:
    """`mlflow.system_metrics` (`system/*`, sampled every SYSTEM_METRICS_INTERVAL_S), unless
    MLflow's own switch MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING says false (the test suite does:
    a run's keys then do not depend on how long it took)."""
    if os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "").lower() in ("false", "0") \
            or not wanted:
        return False
    if not os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"):
        from mlflow.system_metrics import set_system_metrics_sampling_interval

        set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL_S)
    return True
