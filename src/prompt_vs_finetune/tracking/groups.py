"""A run's group and its parent run: a Hydra multirun, or a DVC study, is one parent run in
each MLflow experiment its jobs log to, the job runs nested under it, so a 36-job study is one
row to expand. A job finds its group's parent by tag, or creates it under the store's lock,
FINISHED at once, so a killed sweep leaves no run RUNNING. The group key: a multirun's sweep
folder; a study's name (`study=...`, or any job DVC starts) and its DVC experiment, or else the
git commit."""

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from .keys import GROUP_TAG, PARENT_TAG
from .provenance import git_head
from .store import store_lock

log = logging.getLogger(__name__)
SWEEP_FILE = ".pvf_sweep.json"  # in the sweep folder: the sweep's name (SweepSummary writes it)


@dataclass(frozen=True)
class Group:
    key: str  # finds the parent
    name: str  # the parent run's name
    tags: dict[str, str] = field(default_factory=dict)  # the parent's own tags


def _key(text: str) -> str:
    """A group key safe inside a search filter's quotes."""
    return re.sub(r"['\"\\\\]", "_", text)


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_group(study: str | None) -> Group | None:
    """The sweep or study this job belongs to, or None (a single job)."""
    if in_multirun():
        return sweep_group()
    if study:
        return study_group(str(study))
    if os.environ.get("DVC_STAGE") or os.environ.get("DVC_ROOT"):
        return study_group(dvc_study_name())
    return None


def sweep_group() -> Group:
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
    tags, key, name = {"pvf.kind": "study", "study": study}, f"study:{study}", f"study {study}"
    if experiment := os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp"] = experiment
        key, name = f"{key}:exp:{experiment}", f"{name} ({experiment})"
    elif commit := git_head():
        tags["git_commit"] = commit
        key, name = f"{key}:git:{commit}", f"{name} (git {commit[:8]})"
    return Group(_key(key), name, tags)


def dvc_study_name() -> str:
    """A DVC stage's study when the command names none: `default` for the root dvc.yaml,
    else the folder of the pipeline's dvc.yaml (`pipelines/data_efficiency/dvc.yaml:...`)."""
    path, sep, _ = os.environ.get("DVC_STAGE", "").rpartition(":")
    return (Path(path).parent.name if sep and "/" in path else "") or "default"


def parent_run(tracking_uri: str, experiment_id: str, group: Group) -> str | None:
    """The id of the group's parent run in this experiment: found by its tags, or created
    (FINISHED at once). None if the store refuses (the job logs on, unnested)."""
    client = MlflowClient(tracking_uri)
    try:
        with store_lock(tracking_uri):
            found = client.search_runs(
                [experiment_id],
                f"tags.`{PARENT_TAG}` = 'true' and tags.`{GROUP_TAG}` = '{_key(group.key)}'",
                order_by=["attributes.start_time ASC"])
            if found:
                return found[0].info.run_id
            run = client.create_run(experiment_id, run_name=group.name,
                                    tags={PARENT_TAG: "true", GROUP_TAG: group.key, **group.tags})
            client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FINISHED))
            return run.info.run_id
    except Exception:  # noqa: BLE001 - nesting is a convenience; the job's run is what counts
        log.warning("could not find or create the parent run of %s", group.key, exc_info=True)
        return None
