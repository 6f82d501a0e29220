"""The report's own MLflow run in the `pvf-report` experiment, and the tags and metrics it
leaves on its job runs' parent runs (docs/report.md, "The report's MLflow run")."""

import logging
import os
import re
import time
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Metric, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..tracking.keys import GROUP_TAG
from ..tracking.naming import dvc_study_name, study_group
from ..tracking.runs import hold_interrupts
from ..tracking.store import use_experiment
from .runs import REFERENCE_DTYPE

log = logging.getLogger(__name__)

EXPERIMENT = "pvf-report"
# relative: the UI's own address; on its Model training pages (tracking/store.ML_WORKFLOW)
UI_LINK = "#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"
MAX_IDS_TAG = 5000  # characters of `pvf.job_runs`; job_runs.csv has them all
MAX_NOTE = 7500  # characters of the description (MLflow truncates tag values at 8000)
JOB_COLUMNS = ["run_id", "experiment_id", "task", "arm", "model", "seed", "cell", "link",
               "n_labels", "quality"]
_BAD_KEY = re.compile(r"[^\w\-. ]")  # within one segment of a metric key (/ separates them)


def log_report_run(tracking_uri: str, out: Path, runs: pd.DataFrame, summary: dict) -> str:
    """Log the report under `out` (written from `runs`) as one run, linked to its job runs and
    their parent runs; return its id."""
    use_experiment(tracking_uri, EXPERIMENT)
    client = MlflowClient(tracking_uri)
    jobs = job_runs(runs)
    parents = parent_runs(client, jobs)
    study = shared_study(jobs)
    tags = {"pvf_summary": "true", "pvf.job_runs": ids_tag(jobs["run_id"]),
            "mlflow.note.content": description(jobs, summary, parents),
            **({"study": study} if study else {})}
    release = hold_interrupts()  # a Ctrl-C lands before the run exists or inside the block
    try:
        active = mlflow.start_run(run_name=run_name(jobs), tags=tags)
    except BaseException:
        release()
        raise
    try:  # the run ends as the job runs end: KILLED on Ctrl-C, FAILED on an error
        release()  # inside: a Ctrl-C held until now ends the run KILLED
        mlflow.log_param("runs", len(jobs))
        mlflow.log_metrics({"runs": float(len(jobs)), **summary_metrics(summary)})
        mlflow.log_text(jobs[JOB_COLUMNS].to_csv(index=False), "job_runs.csv")
        mlflow.log_artifacts(str(out))
    except BaseException as err:
        mlflow.end_run("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
        raise
    mlflow.end_run("FINISHED")
    now = int(time.time() * 1000)
    for parent in own_parents(parents):  # each gets the numbers of its own jobs' tasks
        children = jobs[jobs["parent_run_id"] == parent["run_id"]]
        metrics = {"runs": float(len(children)), **summary_metrics(summary, set(children["task"]))}
        try:
            client.log_batch(parent["run_id"], tags=[RunTag("pvf.report_run", active.info.run_id)],
                             metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
        except MlflowException as err:
            log.warning("could not log the summary into parent run %s (%s)", parent["run_id"], err)
    return active.info.run_id


def job_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs in a stable order, with links."""
    jobs = runs.assign(seed=runs["seed"].astype(str))
    jobs = jobs.sort_values(["task", "model", "arm", "n_labels", "seed", "run_id"])
    links = [UI_LINK.format(experiment_id=e, run_id=r)
             for e, r in zip(jobs["experiment_id"], jobs["run_id"], strict=True)]
    return jobs.assign(link=links).reset_index(drop=True)


def shared_study(jobs: pd.DataFrame) -> str:
    """The runs' `study` tag when they all carry the same one, else ""."""
    studies = set(jobs["study"].fillna(""))
    return studies.pop() if len(studies) == 1 else ""


def run_name(jobs: pd.DataFrame) -> str:
    """`report: default study · intent_sample, summary_sample · 24 runs`."""
    tasks = sorted(jobs["task"].unique())
    what = ", ".join(tasks) if len(tasks) <= 4 else \
        f"{', '.join(tasks[:3])} +{len(tasks) - 3} more"
    study, experiment = shared_study(jobs), os.environ.get("DVC_EXP_NAME")
    name = " · ".join([*([f"{study} study"] if study else []),
                       *([f"experiment {experiment}"] if experiment else []), what,
                       f"{len(jobs)} run{'s' if len(jobs) != 1 else ''}"])
    return f"report: {name}"[:250]


def ids_tag(run_ids) -> str:
    """The run ids, comma-separated, within MAX_IDS_TAG characters (the rest counted)."""
    ids = list(run_ids)
    return _within("", [("," if i else "") + run_id for i, run_id in enumerate(ids)],
                   MAX_IDS_TAG, lambda left: f",... (+{left} more: job_runs.csv)")


def _within(text: str, items: list[str], limit: int, more) -> str:
    """`text` and as many `items` as fit in `limit` characters, then `more(how many are left)`."""
    for i, item in enumerate(items):
        if len(text) + len(item) + len(more(len(items) - i)) > limit:
            return text + more(len(items) - i)
        text += item
    return text


def summary_metrics(summary: dict, tasks: set[str] | None = None) -> dict[str, float]:
    """summary.json's numbers (only those of `tasks` when given) as MLflow metrics."""
    metrics: dict[str, float] = {}
    for name, entry in summary.get("tasks", {}).items():
        task, _, model = name.partition("/")
        if tasks is not None and task not in tasks:
            continue
        for arm, value in entry.get("best", {}).items():
            metrics[metric_key("best", task, model, arm, entry["metric"])] = value
        for dtype, best in entry.get("best_by_dtype", {}).items():
            for arm, value in best.items() if dtype != REFERENCE_DTYPE else ():
                metrics[metric_key("best_by_dtype", dtype, task, model, arm,
                                   entry["metric"])] = value
    for task, crossings in summary.get("break_even", {}).items():
        for cross in crossings if tasks is None or task in tasks else ():
            metrics[metric_key("break_even", task, *cross["fine_tuned"].split("/"), "vs",
                               *cross["prompting"].split("/"))] = cross["break_even_predictions"]
    return {k: float(v) for k, v in metrics.items() if v is not None}


def metric_key(*segments: str) -> str:
    """Segments joined by "/", each with the characters MLflow refuses replaced by "_"."""
    clean = [_BAD_KEY.sub("_", str(s)).strip() or "_" for s in segments]
    return "/".join("_" if s in (".", "..") else s for s in clean)[:250].rstrip("/")


def description(jobs: pd.DataFrame, summary: dict, parents: list[dict]) -> str:
    """The run page (markdown): each task's best arm and its quality, a link to each parent run
    and to every job run (as many as fit)."""
    best: dict[str, tuple[float, str, str, str]] = {}
    for name, entry in summary.get("tasks", {}).items():
        task, _, model = name.partition("/")
        for arm, value in entry.get("best", {}).items():
            if value is not None and (task not in best or value > best[task][0]):
                best[task] = (value, arm, model, entry["metric"])
    study = shared_study(jobs)
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
    """The job runs' parent runs; one that cannot be read (deleted) is left out, warned."""
    found = []
    for run_id in sorted(set(jobs["parent_run_id"]) - {""}):
        try:
            run = client.get_run(run_id)
        except MlflowException as err:
            log.warning("parent run %s not found (%s); not linked", run_id, err)
            continue
        found.append({"run_id": run_id, "name": run.info.run_name or "",
                      "group": run.data.tags.get(GROUP_TAG, ""),
                      "link": UI_LINK.format(experiment_id=run.info.experiment_id,
                                             run_id=run_id)})
    return found


def own_parents(parents: list[dict]) -> list[dict]:
    """The parents this report may write into: under DVC only its own study's (a `dvc exp run`
    report also reads the baseline's runs, and must not overwrite the baseline's parent)."""
    if not (os.environ.get("DVC_STAGE") or os.environ.get("DVC_ROOT")):
        return parents
    own = study_group(dvc_study_name()).key
    return [p for p in parents if p["group"] == own]
