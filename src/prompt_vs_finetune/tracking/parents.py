"""Parent runs: a Hydra multirun, or a DVC study, is one parent run in each MLflow experiment
its jobs log to, with the job runs nested under it (the tag `mlflow.parentRunId`), so a
36-job study is one row to expand, not 36 loose runs.

A job finds its group's parent by tag (`pvf.parent=true`, `pvf.group=<key>`) in its own
experiment, or creates it; parallel jobs (joblib, `dvc exp run --queue`) do that under a file
lock, so there is one parent per group and experiment. A parent is created FINISHED (children
nest under it by the tag, whatever its status), so a killed sweep leaves no run RUNNING
forever. The group key:

- a multirun: its sweep folder (`multirun/<time>`);
- a study (`study=...`, or any job that `dvc repro` / `dvc exp run` starts): the study's name
  and the DVC experiment (`dvc exp run` names it), or else the git commit.

At the end of a multirun, the SweepSummary callback (tracking/sweep.py) logs the sweep's
summary into its parents (`log_sweep_summary`).
"""

import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.entities import Metric, RunStatus, RunTag
from mlflow.tracking import MlflowClient

from ..provenance import git_head
from .naming import in_multirun, redact_override
from .store import store_lock

log = logging.getLogger(__name__)

PARENT_TAG = "pvf.parent"  # "true" on a parent run
GROUP_TAG = "pvf.group"  # the group key, on the parent and on its job runs
SWEEP_FILE = ".pvf_sweep.json"  # in the sweep folder: the sweep's name (SweepSummary writes it)
MAX_NAME = 200


@dataclass(frozen=True)
class Group:
    key: str  # finds the parent
    name: str  # the parent run's name
    tags: dict[str, str] = field(default_factory=dict)  # the parent's own tags


def _key(text: str) -> str:
    """A group key safe inside a search filter's quotes."""
    return re.sub(r"['\"\\\\]", "_", text)


def job_group(cfg) -> Group | None:
    """The sweep or study this job belongs to, or None (a single job)."""
    if in_multirun():
        return sweep_group()
    under_dvc = bool(os.environ.get("DVC_STAGE") or os.environ.get("DVC_ROOT"))
    if not cfg.study and not under_dvc:
        return None
    return study_group(str(cfg.study) if cfg.study else dvc_study_name())


def sweep_group() -> Group:
    from hydra.core.hydra_config import HydraConfig

    folder = Path(HydraConfig.get().sweep.dir).resolve()
    try:
        info = json.loads((folder / SWEEP_FILE).read_text())
    except (OSError, ValueError):  # SweepSummary is not among the callbacks
        info = {}
    tags = {"pvf.kind": "sweep", "sweep_dir": str(folder)}
    if info.get("overrides"):
        tags["overrides"] = info["overrides"]
    return Group(_key(f"sweep:{folder}"), info.get("name") or f"sweep {folder.name}", tags)


def study_group(study: str) -> Group:
    """`study <name> (<dvc experiment>)`, or `(git <commit>)` outside `dvc exp run`."""
    experiment, commit = os.environ.get("DVC_EXP_NAME"), None
    if experiment:
        key, label = f"study:{study}:exp:{experiment}", experiment
    else:
        commit = git_head()
        key, label = (f"study:{study}:git:{commit}", f"git {commit[:8]}") if commit \
            else (f"study:{study}", None)
    tags = {"pvf.kind": "study", "study": study,
            **({"dvc_exp": experiment} if experiment else {}),
            **({"git_commit": commit} if commit else {})}
    return Group(_key(key), f"study {study}" + (f" ({label})" if label else ""), tags)


def dvc_study_name() -> str:
    """A DVC stage's study when the command names none: `default` for the root dvc.yaml,
    else the folder of the pipeline's dvc.yaml (`pipelines/data_efficiency/dvc.yaml:...`)."""
    stage = os.environ.get("DVC_STAGE", "")
    path, sep, _ = stage.rpartition(":")
    if sep and "/" in path:
        return Path(path).parent.name or "default"
    return "default"


def sweep_name(sweep_dir: str, overrides: list[str], optimiser: str | None = None) -> str:
    """`sweep 2026-11-21_13-00-00: arm=zero_shot,lora seed=0,1`: the sweep's folder and what
    it sweeps (the overrides every job shares are its parent's tag `overrides`), and the
    optimising sweeper if any."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        swept = [o.input_line for o in parsed if o.is_sweep_override()]
    except Exception:  # noqa: BLE001 - a name is not worth failing the sweep for
        swept = overrides
    head = f"sweep {Path(sweep_dir).name}" + (f" ({optimiser})" if optimiser else "")
    text = " ".join(redact_override(o) for o in swept)
    name = f"{head}: {text}" if text else head
    return name if len(name) <= MAX_NAME else name[:MAX_NAME - 3] + "..."


def parent_run(tracking_uri: str, experiment_id: str, group: Group) -> str | None:
    """The id of the group's parent run in this experiment: found by its tags, or created
    (FINISHED at once) under the store's lock. None if the store refuses (the job logs on,
    unnested)."""
    client = MlflowClient(tracking_uri)
    try:
        with store_lock(tracking_uri):
            found = find_parents(client, group.key, [experiment_id])
            if found:
                return found[0]
            run = client.create_run(experiment_id, run_name=group.name,
                                    tags={PARENT_TAG: "true", GROUP_TAG: group.key, **group.tags})
            client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FINISHED))
            return run.info.run_id
    except Exception:  # noqa: BLE001 - nesting is a convenience; the job's run is what counts
        log.warning("could not find or create the parent run of %s", group.key, exc_info=True)
        return None


def find_parents(client: MlflowClient, key: str, experiment_ids: list[str]) -> list[str]:
    """Parent runs of a group (oldest first)."""
    runs = client.search_runs(
        experiment_ids, f"tags.`{PARENT_TAG}` = 'true' and tags.`{GROUP_TAG}` = '{_key(key)}'",
        order_by=["attributes.start_time ASC"])
    return [run.info.run_id for run in runs]


def log_sweep_summary(tracking_uri: str, run_id: str, jobs: list[dict],
                      best: dict | None = None) -> None:
    """Into a sweep's parent run: jobs finished / failed (`sweep/*` metrics), the failed jobs'
    overrides (tag `failed_overrides`), the best objective of an optimising sweeper
    (`sweep/best_objective`, tag `best_overrides`), the job table (`sweep.json`); and the
    sweep's end as the parent's end time."""
    client = MlflowClient(tracking_uri)
    failed = [j for j in jobs if j["status"] != "finished"]
    values = {"sweep/jobs": len(jobs), "sweep/jobs_finished": len(jobs) - len(failed),
              "sweep/jobs_failed": len(failed)}
    tags = {}
    if failed:
        tags["failed_overrides"] = _clip(" | ".join(" ".join(j["overrides"]) for j in failed))
    if best and isinstance(best.get("best_value"), (int, float)):
        values["sweep/best_objective"] = float(best["best_value"])
        tags["best_overrides"] = _clip(" ".join(f"{k}={v}" for k, v in
                                                best.get("best_params", {}).items()))
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in values.items()],
                     tags=[RunTag(k, v) for k, v in tags.items()])
    client.log_dict(run_id, {"jobs": jobs, **({"best": best} if best else {})}, "sweep.json")
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED), end_time=now)


def _clip(text: str, limit: int = 5000) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."
