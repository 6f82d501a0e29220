"""The MLflow store: the experiment (made once), its views, system metrics, datasets and models."""

import functools
import hashlib
import json
import logging
import os
import tempfile
import time
from contextlib import suppress
from pathlib import Path

import mlflow
import requests
from filelock import FileLock
from mlflow.data.dataset_source_registry import get_dataset_source_from_json, resolve_dataset_source
from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource
from mlflow.exceptions import MlflowException

from ..errors import UserError, causes, first_line
from ..project import data_path
from ..tasks import task_type
from .secrets import redact

log = logging.getLogger(__name__)

# what MLflow 3's UI reads where neither its toggle nor a link decides (docs/tracking.md)
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# MLflow 3's saved views of the runs table: experiment tags {name, createdAt, updatedAt, state}
SAVED_VIEW_TAG = "mlflow.sharedViewState."

# what SQLite and the HTTP client say -> what is wrong with the store, and what to do
FAULTS = ((("database or disk is full",), "its disk ({folder}) is full; free space there"),
          (("readonly database", "unable to open database file"),
           "it cannot be written (a read-only or immutable file, or folder); make it writable"),
          (("database is locked",), "it is locked by another process; let that finish, or end it"),
          (("malformed", "not a database"),
           "it is damaged ({error}); restore it from a backup, or use another store"),
          (("Max retries exceeded", "no answer to GET"),
           "it cannot be reached ({error}); start the server, or fix MLFLOW_TRACKING_URI"))
_reached: set[str] = set()  # servers this process has reached: MLflow's client retries them


def store_path(tracking_uri: str) -> Path | None:
    """A sqlite store's database file; None for a server's."""
    sqlite = tracking_uri.startswith("sqlite:///")
    return Path(tracking_uri.removeprefix("sqlite:///").partition("?")[0]) if sqlite else None


def store_problem(err: BaseException, tracking_uri: str) -> str | None:
    """`the MLflow tracking store 'uri': what is wrong with it`, when `err` is the store failing."""
    chain, path = list(causes(err)), store_path(tracking_uri)
    if any(type(e).__module__.startswith(("mlflow", "sqlalchemy", "sqlite3")) for e in chain):
        for seen, (markers, cause) in ((e, f) for e in chain for f in FAULTS):
            if any(marker in str(seen) for marker in markers):
                return redact(f"the MLflow tracking store {tracking_uri!r}: " + cause.format(
                    folder=path.absolute().parent if path else "the server's",
                    error=first_line(seen, 150)))
    return None


def store_errors(doing: str):
    """A function of a store (its first argument) whose store failing is one line (UserError)."""
    def decorate(function):
        @functools.wraps(function)
        def guarded(tracking_uri: str, *args, **kwargs):
            try:
                return function(tracking_uri, *args, **kwargs)
            except Exception as err:
                if problem := store_problem(err, tracking_uri):
                    raise UserError(f"cannot {doing} {problem}") from err
                raise
        return guarded
    return decorate


class LogFileOnly(logging.Handler):
    """A library's log lines (a failing store's tracebacks) into the job's log file only; a
    server's retries as one line of pvf's, once."""

    retried = False

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("Retrying") and not LogFileOnly.retried:
            LogFileOnly.retried = True
            log.warning("the MLflow tracking server %s does not answer; retrying as MLflow's "
                        "client does (MLFLOW_HTTP_REQUEST_MAX_RETRIES)",
                        redact(mlflow.get_tracking_uri()))
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
                handler.handle(record)


def library_logs_to_file(verbose: bool = False) -> None:
    """MLflow's, SQLAlchemy's and urllib3's log lines in the log file only (`verbose`: shown)."""
    for name in ("mlflow", "sqlalchemy", "alembic", "urllib3"):
        logger = logging.getLogger(name)
        logger.handlers, logger.propagate = ([] if verbose else [LogFileOnly()]), verbose


library_logs_to_file()  # MLflow put its own handler on the terminal as it was imported


def store_lock(tracking_uri: str) -> FileLock:
    """For what parallel jobs must create once: beside a sqlite database, else one per store in
    the temp folder (a server shared by jobs on one machine)."""
    if db := store_path(tracking_uri):
        db.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(f"{db}.lock", timeout=600)
    digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
    return FileLock(str(Path(tempfile.gettempdir()) / f"pvf-mlflow-{digest}.lock"), timeout=600)


def use_experiment(tracking_uri: str, name: str, tags: dict[str, str] | None = None):
    """Point mlflow at the experiment, created if needed, with the `tags` it lacks (yours stay)."""
    mlflow.set_tracking_uri(tracking_uri)
    if tracking_uri.startswith(("http://", "https://")) and tracking_uri not in _reached:
        try:  # one quick request: MLflow's client retries for minutes (a server restarting)
            requests.get(tracking_uri.rstrip("/") + "/health", timeout=10).raise_for_status()
        except requests.RequestException as err:
            raise MlflowException(f"no answer to GET /health ({type(err).__name__})") from err
        _reached.add(tracking_uri)
    # parallel jobs creating one store or experiment race (sqlite: and corrupt it)
    with store_lock(tracking_uri):
        experiment = mlflow.set_experiment(name)
        for key, value in (EXPERIMENT_KIND | (tags or {})).items():
            if key not in experiment.tags:
                mlflow.set_experiment_tag(key, value)
    return experiment


def dashboard_views(type_name: str) -> dict[str, str]:
    """Two saved views of the runs table: the job runs, best first; the same averaged by variant."""
    metrics = [f"metrics.`{key}`" for key in (
        *task_type(type_name).dashboard(), "test/perplexity", "cost/usd_per_1k_predictions",
        "cost/train_usd", "data/n_labels")]
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
    """`mlflow.system_metrics`, unless MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING says false (the
    tests': a run's keys then do not depend on how long it took)."""
    if os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "").lower() in ("false", "0") \
            or not wanted:
        return False
    os.environ.setdefault("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "5")  # MLflow's: 10
    return True


def split_source(task, data_dir: str | None, role: str):
    """Where a split's rows came from (a carved validation's and the demonstrations': train)."""
    carved = role == "demos" or (role == "validation" and task.splits.validation is None)
    origin = "train" if carved else role
    split = task.splits[origin]
    if data_dir:  # pvf-prepare wrote the source's splits as <role>.jsonl
        path = str(Path(data_dir).resolve() / f"{origin}.jsonl")
    elif task.data_files:
        path = data_path(task.data_files[split], f"task.data_files.{split}")
    else:
        return HuggingFaceDatasetSource(path=task.hub, config_name=task.hub_config, split=split)
    if "://" in path:  # a URL or hf:// path the loader opened as it is
        with suppress(Exception):  # a scheme MLflow has no source for: keep the URI
            return resolve_dataset_source(path)
    return get_dataset_source_from_json(json.dumps({"uri": path}), "local")


def log_datasets(task, data_dir: str | None, fit: bool, splits, demos: list[dict],
                 digests: dict[str, str]) -> None:
    """The splits the arm used as the run's inputs `<task>/<role>`, digested `data.*_sha256`."""
    import datasets
    from mlflow.data.huggingface_dataset import from_huggingface

    used = {"demos": datasets.Dataset.from_list(demos)} if demos else {}
    if fit:
        used |= {"train": splits["train"], "validation": splits["validation"]}
    used["test"] = splits["test"]
    inputs = [from_huggingface(
        split, name=f"{task.name}/{role}", digest=digests[role],
        targets=next((c for c in ("label", "references") if c in split.column_names), None),
        source=split_source(task, data_dir, role)) for role, split in used.items()]
    mlflow.log_inputs(datasets=inputs, contexts=[{"train": "training"}.get(r, r) for r in used],
                      tags_list=[None] * len(inputs))


def log_fitted_model(model, tokenizer, arm: str, task, base_path: str | None) -> str:
    """The fitted model (or LoRA adapter) as a text-generation pipeline; offline (card, pins)."""
    from importlib.metadata import version
    from importlib.util import find_spec

    from huggingface_hub import ModelCard

    peft = hasattr(model, "peft_config")
    base = model.peft_config["default"].base_model_name_or_path if peft \
        else str(base_path or model.name_or_path)
    requirements = [f"{package}=={version(package)}" for package in (
        "torch", "transformers", "accelerate", *(["peft"] if peft else [])) if find_spec(package)]
    run = mlflow.active_run()
    variant = run.data.tags["variant"].rpartition(" #")[0]  # naming.job_record's
    card = ModelCard("\n".join([
        "---", "library_name: transformers",
        f"tags: [prompt-vs-finetune, {arm}{', peft' if peft else ''}]", "---", "",
        f"# {task.name}: {variant}", "",
        f"`{arm}` of `{base}` on the task `{task.name}` by prompt-vs-finetune "
        f"(run `{run.info.run_name}`; the run's params and config.yaml hold the whole config).",
        "", "Prompt template:", "", "```", str(task.template), "```", ""]))
    extra = {"base_model_path": base} if peft and Path(base).is_dir() else {}
    info = mlflow.transformers.log_model(
        {"model": model, "tokenizer": tokenizer}, name="model", task="text-generation",
        model_card=card, pip_requirements=requirements,
        torch_dtype=next(model.parameters()).dtype, **extra)
    return info.model_uri
