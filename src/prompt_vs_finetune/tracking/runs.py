"""MLflow: one run per job, owned by the job.

Lightning's MLFlowLogger ends its run when `trainer.fit` finishes; a job here runs fit *and*
test, so the job opens the run, the logger writes into it, and only the job's outcome sets the
final status: FINISHED after the last artifact, FAILED on an error, KILLED on Ctrl-C.
"""

import hashlib
import json
import logging
import re
import subprocess
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
from filelock import FileLock
from lightning.pytorch.loggers import MLFlowLogger
from mlflow.entities import RunStatus
from omegaconf import DictConfig, OmegaConf

from ..errors import UserError
from .secrets import redact

log = logging.getLogger(__name__)

MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
# characters MLflow refuses in a param key (Banking77 has a label "reverted_card_payment?")
_BAD_KEY_CHARS = re.compile(r"[^\w\-. :/]")


class JobMLFlowLogger(MLFlowLogger):
    """MLFlowLogger that writes into the job's run and leaves its status to the job, and logs
    a (metric, step) once: the resume checkpoint flushes a step's metrics before Lightning
    itself logs them (train/resume.py)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._logged: set[tuple[str, int | None]] = set()

    def log_metrics(self, metrics, step=None) -> None:
        fresh = {k: v for k, v in metrics.items() if (k, step) not in self._logged}
        self._logged.update((k, step) for k in fresh)
        if fresh:
            super().log_metrics(fresh, step)

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


VOLATILE = ("paths", "hydra", "resume", "resume_every_n_steps", "verbose", "results_file")
CELL_FREE = ("seed", "data_seed", "mlflow")  # what a cell's runs may differ in


def config_hash(cfg: DictConfig, drop: tuple[str, ...] = ()) -> str:
    """Hash of what determines a job's result (not where it writes or how it logs), without
    the top-level keys in `drop`. The config is hashed unresolved: `${paths.output_dir}`
    carries a timestamp once resolved, `${seed}` in arm.order_seed is the seed's own key."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    kept = {k: v for k, v in raw.items() if k not in (*VOLATILE, *drop)}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def hpo_trial() -> bool:
    """Whether this job is a trial of a hyper-parameter search (an optimising sweeper): its
    test metrics are not the experiment's, only the trial chosen on validation is."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return False
    sweeper = HydraConfig.get().sweeper
    return "optuna" in str(sweeper.get("_target_", "")).lower()


def job_tags(cfg: DictConfig) -> dict[str, str]:
    """What a run is, as tags to filter and group by. `fit`: whether the arm trains weights
    (the arm config's own key), which the report uses rather than arm names."""
    tags = {"arm": cfg.arm.name, "fit": str(bool(cfg.arm.fit)).lower(), "task": cfg.task.name,
            "model": cfg.model.name, "seed": str(cfg.seed), "train_size": str(cfg.train_size),
            "prompt": str(cfg.task.prompt or ""), "k": str(cfg.arm.k),
            # runs with the same `cell` differ in their seeds only: one experiment
            "cell": config_hash(cfg, drop=CELL_FREE)}
    if hpo_trial():
        tags["hpo_trial"] = "true"
    if not cfg.model.api:  # a hosted model runs at whatever precision its provider uses
        tags["inference_dtype"] = str(cfg.inference_dtype)
    if cfg.study:
        tags["study"] = str(cfg.study)
    found = git_commit()
    if found:
        tags["git_commit"] = tags["mlflow.source.git.commit"] = found[0]
        tags["git_dirty"] = str(found[1]).lower()
    return tags


def _probe_server(uri: str) -> None:
    """One quick request: MLflow's own client retries an unreachable server for minutes."""
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=10)
    except requests.RequestException as err:
        raise ConnectionError(f"{redact(uri)} cannot be reached ({type(err).__name__})") from err


def use_experiment(tracking_uri: str, name: str) -> None:
    """Point mlflow at the store and experiment, creating them if needed.

    A new sqlite store builds its tables on first use, and two jobs doing that at once (a
    joblib sweep, `dvc exp run` in parallel) corrupt it; so is creating one experiment twice.
    A file lock beside the database serialises both; later writes rely on sqlite's own
    locking (MLflow sets a 20 s busy timeout).
    """
    mlflow.set_tracking_uri(tracking_uri)
    if tracking_uri.startswith(("http://", "https://")):
        _probe_server(tracking_uri)
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
def mlflow_run(cfg: DictConfig, resume_run_id: str | None = None
               ) -> Iterator[mlflow.ActiveRun | None]:
    """Open the job's run, log its config, and end it with the job's real outcome.
    `resume_run_id` reopens an interrupted attempt's run (its params are already there).
    Yields None on DDP ranks > 0: a job is one run, owned by rank 0."""
    if not is_rank_zero():
        yield None
        return
    try:
        use_experiment(cfg.mlflow.tracking_uri, cfg.mlflow.experiment_name)
    except Exception as err:  # noqa: BLE001 - any store failure here is a config problem
        raise UserError(
            f"cannot use the MLflow tracking store {redact(cfg.mlflow.tracking_uri)!r} "
            f"({str(err).splitlines()[0][:200]}); fix MLFLOW_TRACKING_URI or mlflow.tracking_uri"
        ) from err
    if resume_run_id:
        run = mlflow.start_run(run_id=resume_run_id)
        resumed = int(run.data.tags.get("resumed", "0")) + 1
        mlflow.set_tag("resumed", str(resumed))
    else:
        run = mlflow.start_run(run_name=cfg.mlflow.run_name, tags=redact(job_tags(cfg)))
    try:
        if not resume_run_id:
            resolved = redact(OmegaConf.to_container(cfg, resolve=True))
            mlflow.log_params(flatten(resolved))
            mlflow.log_text(OmegaConf.to_yaml(OmegaConf.create(resolved)), "config.yaml")
        yield run
    except KeyboardInterrupt:
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException as err:
        record_failure(err)
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    else:
        mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))


def error_line(err: BaseException) -> str:
    """`Type: first line`, and the root cause's when the error wraps one (Hydra's
    InstantiationException says only which target failed)."""
    def line(e: BaseException) -> str:
        text = str(e).strip().splitlines()
        return f"{type(e).__name__}: {text[0] if text else ''}"

    root = err
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    return (line(err) if root is err else f"{line(err)} <- {line(root)}")[:500]


def record_failure(err: BaseException) -> None:
    """On the active run: the error as the tag `error`, the traceback as traceback.txt."""
    try:
        mlflow.set_tag("error", redact(error_line(err)))
        mlflow.log_text(redact("".join(traceback.format_exception(err))), "traceback.txt")
    except Exception:  # noqa: BLE001 - the store may be the thing that failed
        log.warning("could not record the failure in MLflow", exc_info=True)


def lightning_logger(run: mlflow.ActiveRun | None, cfg: DictConfig) -> JobMLFlowLogger | bool:
    if run is None:
        return False
    return JobMLFlowLogger(tracking_uri=cfg.mlflow.tracking_uri, run_id=run.info.run_id)


def log_report_run(tracking_uri: str, out: Path, n_runs: int) -> str:
    """A report's files as artifacts of one `report` run in the `pvf-report` experiment, so
    the dashboard has them too."""
    use_experiment(tracking_uri, "pvf-report")
    with mlflow.start_run(run_name="report", tags={"pvf_summary": "true"}) as run:
        mlflow.log_param("runs", n_runs)
        mlflow.log_artifacts(str(out))
    return run.info.run_id
