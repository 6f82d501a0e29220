"""The report's MLflow side: the finished job runs read in, one row each, and its own run."""

import json
import logging
import math
import os
import re
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..errors import UserError
from ..tracking.keys import GROUP_TAG, PARENT_RUN_TAG, PARENT_TAG, PER_EXAMPLE_FILE, QUALITY_TAG
from ..tracking.naming import ML_WORKFLOW, dvc_study_name, study_group
from ..tracking.runs import hold_interrupts
from ..tracking.secrets import redact
from ..tracking.store import store_errors, store_path, use_experiment

log = logging.getLogger(__name__)

REFERENCE_DTYPE = "float32"  # runs without the inference_dtype tag
COLUMNS = {  # report column -> MLflow metric (besides `quality`: the run's headline metric)
    "perplexity": "test/perplexity", "usd_per_1k": "cost/usd_per_1k_predictions",
    "train_usd": "cost/train_usd", "train_seconds": "cost/train_seconds",
    "trainable_params": "cost/trainable_params", "total_params": "cost/total_params",
    "unparsed_rate": "test/unparsed_rate", "tokens_per_call": "cost/tokens_per_prediction",
    "usd_per_1k_measured": "cost/usd_per_1k_predictions_measured",
    "bits_per_byte": "test/bits_per_byte", "teacher_usd": "cost/teacher_usd",  # hybrid: up front
    "ece": "test/ece", "accuracy_contextual": "test/accuracy_contextual",
    "accuracy_pmi": "test/accuracy_pmi", "repeated_ngram_rate": "test/repeated_ngram_rate",
    "hit_max_new_tokens": "test/hit_max_new_tokens", "length_words_std": "test/length_words_std",
    "macro_f1": "test/macro_f1", "rouge1": "test/rouge1", "rouge2": "test/rouge2",
    "n_validation": "data/n_validation", "classes_covered": "data/classes_covered",
    "usd_per_1k_cached": "cost/usd_per_1k_predictions_cached", "labels_usd": "cost/labels_usd",
    "teacher_usd_cached": "cost/teacher_usd_cached",  # with a prefix cache (report/cells.WAYS)
}
# params that never tell two cells apart in a table
NOT_VARIANTS = ("seed", "data_seed", "paths.", "hydra.", "mlflow.", "results_file", "data.",
                "fewshot.", "resume", "verbose", "arm.order_seed", "decoding.seed", "study")
EXPERIMENT = "pvf-report"
MAX_IDS_TAG = 5000  # characters of `pvf.job_runs`; job_runs.csv has them all
MAX_NOTE = 7500  # characters of the description (MLflow truncates tag values at 8000)
JOB_COLUMNS = ["run_id", "experiment_id", "task", "arm", "model", "seed", "cell", "link",
               "n_labels", "quality"]
_BAD_KEY = re.compile(r"[^\w\-. ]")  # within one segment of a metric key (/ separates them)


@store_errors("read")
def load_runs(tracking_uri: str, experiments: list[str] | None = None,
              filter_string: str = "", run_ids: set[str] | None = None) -> pd.DataFrame:
    """One row per FINISHED job run (of `run_ids` when given: stale studies' runs stay out)."""
    if (path := store_path(tracking_uri)) and not path.exists():
        raise UserError(f"the MLflow tracking store {redact(tracking_uri)!r} does not exist "
                        f"({path.absolute()}); run pvf first, or name the store pvf used")
    client = MlflowClient(tracking_uri)
    ids = [e.experiment_id for e in client.search_experiments()
           if not experiments or e.name in experiments]
    if not ids:
        return pd.DataFrame()
    query = " and ".join(filter(None, ["attributes.status = 'FINISHED'", filter_string]))
    return pd.DataFrame([
        _row(run, *_per_example(run.info.artifact_uri))
        for run in client.search_runs(ids, query, max_results=50000)
        if "arm" in run.data.tags and "true" not in (run.data.tags.get("pvf_summary"),
                                                      run.data.tags.get(PARENT_TAG))
        and (run_ids is None or run.info.run_id in run_ids)])


def saved_results(folder: Path) -> list[dict]:
    """The records `pvf results_file=...` wrote under `folder` (its metrics.json files)."""
    return [json.loads(path.read_text()) for path in sorted(folder.rglob("metrics.json"))]


def recorded_runs(saved: list[dict]) -> pd.DataFrame:
    """load_runs' table from the records `pvf results_file=...` writes, in place of the store."""
    rows = [_row(SimpleNamespace(info=SimpleNamespace(**record["run"]["info"]),
                                 data=SimpleNamespace(**record["run"]["data"])),
                 np.asarray(record["per_example"]["values"], dtype=float),
                 record["per_example"].get("predictions")) for record in saved]
    return pd.DataFrame(sorted(rows, key=lambda row: (-row["started"], row["run_id"])))


def _row(run, examples: np.ndarray | None, predictions: list | None) -> dict:
    """A run as the report's row (the fallbacks: what runs of older pvf versions logged)."""
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    fit = tags["fit"] == "true" if "fit" in tags else metrics.get("cost/train_tokens", 0) > 0
    metric = tags.get(QUALITY_TAG) or ("test/rougeL" if "test/rougeL" in metrics
                                       else "test/accuracy")
    n_classes = metrics.get("data/n_classes",  # else the labels the config named; NaN: none
                            sum(key.startswith("task.labels.") for key in params) or math.nan)
    n_labels = int(metrics.get("data/n_labels",  # else its train examples or demos
                               metrics.get("data/n_train" if fit else "fewshot/demos_used", 0)))
    test_set = params.get("data.test_sha256", "")
    # the same config but the seeds, on the same test set (before the `cell` tag: by name)
    cell = tags.get("cell") or "|".join([tags["task"], tags["model"], tags.get(
        "inference_dtype", REFERENCE_DTYPE), tags["arm"], str(n_labels)])
    return {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
            "parent_run_id": tags.get(PARENT_RUN_TAG, ""),
            "task": tags["task"], "model": tags["model"],
            "dtype": tags.get("inference_dtype") or REFERENCE_DTYPE,
            "arm": tags["arm"], "fit": fit, "seed": tags.get("seed"), "metric": metric,
            "prompt": tags.get("prompt") or params.get("task.prompt", ""),
            "chat": tags.get("chat", "false"),  # prompt.chat: the chat template's layout
            # model.tiny's random weights (before the tag: by the model's name)
            "pretrained": tags.get("pretrained", str(tags["model"] != "tiny").lower()) == "true",
            "calibration": tags.get("calibration", ""),  # what test/accuracy ranked by
            "checkpoint": tags.get("checkpoint", ""),  # a fit's: best, or last (fixed schedule)
            "order_seed": params.get("arm.order_seed", ""),
            "n_labels": n_labels, "n_classes": float(n_classes),
            "quality": metrics.get(metric, math.nan),  # and on validation: what a search chose by
            "val_quality": metrics.get("val/" + metric.split("/", 1)[-1], math.nan),
            "study": tags.get("study", ""), "test_set": test_set, "cell": f"{cell}/{test_set}",
            "hpo_trial": tags.get("hpo_trial") == "true",
            "params": {k: v for k, v in params.items() if not k.startswith(NOT_VARIANTS)},
            "identity": identity(run), "started": run.info.start_time or 0,
            "examples": examples, "predictions": predictions,
            **{column: metrics.get(key, math.nan) for column, key in COLUMNS.items()}}


def identity(run) -> str:
    """What makes two runs the same job: config (seed included), data and code; else the run id."""
    tags, params = run.data.tags, run.data.params
    if not (tags.get("config_hash") and tags.get("pvf.code")):
        return run.info.run_id
    data = [params.get(key, "") for key in ("data.train_sha256", "data.validation_sha256",
                                            "data.test_sha256", "fewshot.demos_sha256")]
    return "|".join([tags["config_hash"], tags["pvf.code"], *data])


def _per_example(artifact_uri: str) -> tuple[np.ndarray | None, list | None]:
    """(each test example's quality, the predictions), Nones where not logged (older runs)."""
    parts = urlparse(artifact_uri)
    try:
        if parts.scheme in ("", "file"):  # a local store: read the file, no download machinery
            data = json.loads((Path(parts.path) / PER_EXAMPLE_FILE).read_text())
        else:
            data = mlflow.artifacts.load_dict(f"{artifact_uri}/{PER_EXAMPLE_FILE}")
        return np.asarray(data["values"], dtype=float), data.get("predictions")
    except Exception:  # noqa: BLE001 - absent or unreadable: the report falls back
        return None, None


@store_errors("log the report into")
def log_report_run(tracking_uri: str, out: Path, runs: pd.DataFrame, summary: dict) -> str:
    """Log the report under `out` as one run, linked to its job runs and their parents."""
    use_experiment(tracking_uri, EXPERIMENT)
    client = MlflowClient(tracking_uri)
    jobs = runs.assign(seed=runs["seed"].astype(str)).sort_values(
        ["task", "model", "arm", "n_labels", "seed", "run_id"]).reset_index(drop=True)
    jobs["link"] = list(map(_link, jobs["experiment_id"], jobs["run_id"]))
    parents = parent_runs(client, jobs)
    study = jobs["study"].iloc[0] if jobs["study"].nunique() == 1 else ""  # when they share one
    tags = {"pvf_summary": "true", "pvf.job_runs": ids_tag(jobs["run_id"]),
            "mlflow.note.content": description(jobs, study, summary, parents),
            **({"study": study} if study else {})}
    release = hold_interrupts()  # a Ctrl-C lands before the run exists or inside the block
    try:
        active = mlflow.start_run(run_name=run_name(jobs, study), tags=tags)
    except BaseException:
        release()
        raise
    try:  # the run ends as the job runs end: KILLED on Ctrl-C, FAILED on an error
        release()  # inside: a Ctrl-C held until now ends the run KILLED
        mlflow.log_param("runs", len(jobs))
        mlflow.log_metrics(summary_metrics(summary, jobs))
        mlflow.log_text(jobs[JOB_COLUMNS].to_csv(index=False), "job_runs.csv")
        mlflow.log_artifacts(str(out))
    except BaseException as err:
        mlflow.end_run("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
        raise
    mlflow.end_run("FINISHED")
    now = int(time.time() * 1000)
    for parent in own_parents(parents):  # each gets the numbers of its own jobs' tasks
        metrics = summary_metrics(summary, jobs[jobs["parent_run_id"] == parent["run_id"]])
        try:
            client.log_batch(parent["run_id"], tags=[RunTag("pvf.report_run", active.info.run_id)],
                             metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
        except MlflowException as err:
            log.warning("could not log the summary into parent run %s (%s)", parent["run_id"], err)
    return active.info.run_id


def _link(experiment_id: str, run_id: str) -> str:
    """A run's page, relative: the UI's own address, on its Model training pages."""
    return f"#/experiments/{experiment_id}/runs/{run_id}{ML_WORKFLOW}"


def run_name(jobs: pd.DataFrame, study: str) -> str:
    """`report: default study · intent_sample, summary_sample · 24 runs`."""
    tasks = sorted(jobs["task"].unique())
    what = ", ".join(tasks) if len(tasks) <= 4 else f"{', '.join(tasks[:3])} +{len(tasks) - 3} more"
    experiment = os.environ.get("DVC_EXP_NAME")
    name = " · ".join([*([f"{study} study"] if study else []),
                       *([f"experiment {experiment}"] if experiment else []), what,
                       f"{len(jobs)} run{'s' if len(jobs) != 1 else ''}"])
    return f"report: {name}"[:250]


def ids_tag(run_ids) -> str:
    """The run ids, comma-separated, within MAX_IDS_TAG characters (the rest counted)."""
    return _within("", [("," if i else "") + run_id for i, run_id in enumerate(run_ids)],
                   MAX_IDS_TAG, lambda left: f",... (+{left} more: job_runs.csv)")


def _within(text: str, items: list[str], limit: int, more) -> str:
    """`text` and as many `items` as fit in `limit` characters, then `more(how many left)`."""
    for i, item in enumerate(items):
        if len(text) + len(item) + len(more(len(items) - i)) > limit:
            return text + more(len(items) - i)
        text += item
    return text


def summary_metrics(summary: dict, jobs: pd.DataFrame) -> dict[str, float]:
    """How many `jobs`, and summary.json's numbers of their tasks, as MLflow metrics."""
    tasks = set(jobs["task"])
    metrics: dict[str, float] = {"runs": len(jobs)}
    for name, entry in summary["tasks"].items():
        task, _, model = name.partition("/")
        if task not in tasks:
            continue
        for dtype, best in [(None, entry["best"]), *entry.get("best_by_dtype", {}).items()]:
            prefix = ("best",) if dtype is None else ("best_by_dtype", dtype)
            for arm, value in best.items() if dtype != REFERENCE_DTYPE else ():
                metrics[metric_key(*prefix, task, model, arm, entry["metric"])] = value
    for task, crossings in summary["break_even"].items():
        for cross in crossings if task in tasks else ():
            metrics[metric_key("break_even", task, *cross["fine_tuned"].split("/"), "vs",
                               *cross["prompting"].split("/"))] = cross["break_even_predictions"]
    return {k: float(v) for k, v in metrics.items() if v is not None}


def metric_key(*segments: str) -> str:
    """Segments joined by "/", each with the characters MLflow refuses replaced by "_"."""
    clean = [_BAD_KEY.sub("_", str(s)).strip() or "_" for s in segments]
    return "/".join("_" if s in (".", "..") else s for s in clean)[:250].rstrip("/")


def description(jobs: pd.DataFrame, study: str, summary: dict, parents: list[dict]) -> str:
    """The run page (markdown): each task's best arm, links to the parent and job runs."""
    best: dict[str, tuple[float, str, str, str]] = {}
    for name, entry in summary["tasks"].items():
        task, _, model = name.partition("/")
        for arm, value in entry.get("best", {}).items():
            if value is not None and (task not in best or value > best[task][0]):
                best[task] = (value, arm, model, entry["metric"])
    lines = [f"Report of **{len(jobs)} job runs**" + (f" (study `{study}`)" if study else "")
             + f" on {', '.join(sorted(jobs['task'].unique()))}. Tables and plots: "
             "**report.html** under Artifacts.", "",
             "**Best arm per task** (each arm at its best float32 cell)", "",
             *([f"- **{task}**: {arm} ({model}), {metric} {value:.3f}"
                for task, (value, arm, model, metric) in sorted(best.items())]
               or ["- no quality logged"]), ""]
    if parents:
        lines += ["**Parent runs** (sweep or study): " + ", ".join(
            f"[{p['name'] or p['run_id']}]({p['link']})" for p in parents), ""]
    links = [f"\n- [{r.task} · {r.model} · {r.arm} · n={int(r.n_labels)} · seed {r.seed}]"
             f"({r.link})" for r in jobs.itertuples()]
    return _within("\n".join([*lines, "**Job runs** (all of them in job_runs.csv)", ""]), links,
                   MAX_NOTE, lambda left: f"\n- ... and {left} more (job_runs.csv)")


def parent_runs(client: MlflowClient, jobs: pd.DataFrame) -> list[dict]:
    """The job runs' parent runs, less those that cannot be read (deleted): warned."""
    found = []
    for run_id in sorted(set(jobs["parent_run_id"]) - {""}):
        try:
            run = client.get_run(run_id)
        except MlflowException as err:
            log.warning("parent run %s not found (%s); not linked", run_id, err)
            continue
        found.append({"run_id": run_id, "name": run.info.run_name or "",
                      "group": run.data.tags.get(GROUP_TAG, ""),
                      "link": _link(run.info.experiment_id, run_id)})
    return found


def own_parents(parents: list[dict]) -> list[dict]:
    """The parents it may write into: under DVC its own study's only (a `dvc exp run` report also
    reads the baseline's runs, and must leave the baseline's parent alone)."""
    if not (os.environ.get("DVC_STAGE") or os.environ.get("DVC_ROOT")):
        return parents
    own = study_group(dvc_study_name()).key
    return [p for p in parents if p["group"] == own]
