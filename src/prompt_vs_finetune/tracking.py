"""MLflow: one run per job, owned by the job.

Lightning's MLFlowLogger ends its run when `trainer.fit` finishes; a job here runs fit *and*
test, so the job opens the run, the logger writes into it, and only the job's outcome sets the
final status: FINISHED after the last artifact, FAILED on an error, KILLED on Ctrl-C.
"""

import logging
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
from filelock import FileLock
from lightning.pytorch.loggers import MLFlowLogger
from mlflow.entities import RunStatus
from omegaconf import DictConfig, OmegaConf

from .errors import UserError

log = logging.getLogger(__name__)

MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
# characters MLflow refuses in a param key (Banking77 has a label "reverted_card_payment?")
_BAD_KEY_CHARS = re.compile(r"[^\w\-. :/]")


class JobMLFlowLogger(MLFlowLogger):
    """MLFlowLogger that writes into the job's run and leaves its status to the job."""

    def log_hyperparams(self, params) -> None:  # the job logs the flattened config itself
        pass

    def finalize(self, status: str = "success") -> None:
        pass


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """{'a': {'b': 1}} -> {'a.b': '1'}; lists become their string form."""
    flat = {}
    for key, value in config.items():
        name = _BAD_KEY_CHARS.sub("_", f"{prefix}{key}")
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            text = str(value)
            if len(text) > MAX_PARAM_CHARS:
                text = text[:MAX_PARAM_CHARS - 3] + "..."
            flat[name] = text
    return flat


def git_commit() -> tuple[str, bool] | None:
    """(commit, dirty) of the working directory's repository, if there is one."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, check=True, timeout=10).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return None


def job_tags(cfg: DictConfig) -> dict[str, str]:
    tags = {"arm": cfg.arm.name, "task": cfg.task.name, "model": cfg.model.name,
            "seed": str(cfg.seed), "train_size": str(cfg.train_size),
            "prompt": str(cfg.task.get("prompt", "")), "k": str(cfg.arm.k)}
    if cfg.get("study"):
        tags["study"] = str(cfg.study)
    found = git_commit()
    if found:
        tags["git_commit"] = tags["mlflow.source.git.commit"] = found[0]
        tags["git_dirty"] = str(found[1]).lower()
    return tags


def use_experiment(tracking_uri: str, name: str) -> None:
    """Point mlflow at the store and experiment, creating them if needed.

    A new sqlite store builds its tables on first use, and two jobs doing that at once (a
    joblib sweep, `dvc exp run` in parallel) corrupt it; so is creating one experiment twice.
    A file lock beside the database serialises both; later writes rely on sqlite's own
    locking (MLflow sets a 20 s busy timeout).
    """
    mlflow.set_tracking_uri(tracking_uri)
    if not tracking_uri.startswith("sqlite:///"):
        mlflow.set_experiment(name)
        return
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{db}.lock", timeout=600):
        mlflow.set_experiment(name)


def is_rank_zero() -> bool:
    """False in the processes a DDP launcher starts for ranks > 0 (they log nothing)."""
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


@contextmanager
def mlflow_run(cfg: DictConfig) -> Iterator[mlflow.ActiveRun | None]:
    """Open the job's run, log its config, and end it with the job's real outcome.
    Yields None on DDP ranks > 0: a job is one run, owned by rank 0."""
    if not is_rank_zero():
        yield None
        return
    try:
        use_experiment(cfg.mlflow.tracking_uri, cfg.mlflow.experiment_name)
    except Exception as err:  # noqa: BLE001 - any store failure here is a config problem
        raise UserError(
            f"cannot use the MLflow tracking store {cfg.mlflow.tracking_uri!r} "
            f"({str(err).splitlines()[0][:200]}); fix MLFLOW_TRACKING_URI or mlflow.tracking_uri"
        ) from err
    run = mlflow.start_run(run_name=cfg.mlflow.run_name, tags=job_tags(cfg))
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
        mlflow.log_params(flatten(resolved))
        mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
        yield run
    except KeyboardInterrupt:
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException:
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    else:
        mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))


def lightning_logger(run: mlflow.ActiveRun | None, cfg: DictConfig) -> JobMLFlowLogger | bool:
    if run is None:
        return False
    return JobMLFlowLogger(tracking_uri=cfg.mlflow.tracking_uri, run_id=run.info.run_id)
