"""MLflow: one run per job, owned by the job.

Lightning's MLFlowLogger ends its run when `trainer.fit` finishes; a job here runs fit *and*
test, so the job opens the run, the logger writes into it, and only the job's outcome sets the
final status: FINISHED after the last artifact, FAILED on an error, KILLED on Ctrl-C.

What the runs table shows: a name that says what differs between runs (the experiment is the
task already), params a person can read, tags to filter and group by, and, in a sweep or a
study, a parent run each job nests under (tracking/parents.py).
"""

import hashlib
import json
import logging
import os
import re
import subprocess
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
from filelock import FileLock
from lightning.pytorch.loggers import MLFlowLogger
from mlflow.entities import RunStatus
from omegaconf import DictConfig, OmegaConf

from ..errors import Preempted, UserError
from ..preemption import raise_if_preempted, sigterm_noted
from .keys import dashboard_metrics
from .secrets import redact

log = logging.getLogger(__name__)

MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow nests a run under the run this tag names
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


# Tracked files whose values every run logs as params (the composed config) or that DVC
# rewrites as it runs: `dvc exp run -S` edits the params files, `dvc repro` dvc.lock. A change
# to them alone leaves the code at git_commit, so it does not make a run git_dirty.
_CONFIG_FILE = re.compile(r"(^|/)(conf/.+\.ya?ml|pipelines/[^/]+/study\.yaml|dvc\.lock)$")


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def changed_files() -> list[str] | None:
    """Tracked files that differ from HEAD (paths from the repository root), or None outside
    a git repository."""
    out = _git("status", "--porcelain=v1", "-z", "--untracked-files=no")
    if out is None:
        return None
    entries, paths = iter(out.split("\0")), []
    for entry in entries:
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC":  # a rename or copy: its source path follows
            next(entries, None)
    return paths


def dvc_outputs() -> list[str]:
    """Under DVC (`DVC_ROOT`): the outputs its lock files list (paths from the repository
    root). A study that versions its results rewrites them as it runs (DVC removes a stage's
    outputs before running it), which says nothing about the code."""
    root, top = os.environ.get("DVC_ROOT"), (_git("rev-parse", "--show-toplevel") or "").strip()
    if not root or not top:
        return []
    import yaml

    locks = {Path(root) / "dvc.lock", *(Path(root) / p for p in (
        _git("-C", root, "ls-files", "-z", "--", "*dvc.lock") or "").split("\0") if p)}
    outputs = []
    for lock in locks:
        try:
            stages = (yaml.safe_load(lock.read_text()) or {}).get("stages") or {}
            spec = lock.with_name("dvc.yaml")
            specs = (yaml.safe_load(spec.read_text()) or {}).get("stages") or {} \
                if spec.is_file() else {}
        except (OSError, yaml.YAMLError):
            continue
        for name, stage in stages.items():
            wdir = (specs.get(name.split("@")[0]) or {}).get("wdir", ".")
            for out in stage.get("outs") or []:
                path = (lock.parent / wdir / out["path"]).resolve()
                outputs.append(os.path.relpath(path, Path(top).resolve()))
    return outputs


def split_changes(paths: list[str], outputs: list[str] = ()) -> tuple[list[str], list[str]]:
    """(code: changes that make a run git_dirty; ignored: changes to files whose values are
    the run's params, or that DVC rewrites as it runs: dvc.lock and the stages' `outputs`)."""
    def ignored(path: str) -> bool:
        return bool(_CONFIG_FILE.search(path)) or any(
            path == out or path.startswith(out.rstrip("/") + "/") for out in outputs)

    return [p for p in paths if not ignored(p)], [p for p in paths if ignored(p)]


def git_head() -> str | None:
    return (_git("rev-parse", "HEAD") or "").strip() or None


def git_tags() -> dict[str, str]:
    """`git_commit`, and `git_dirty`: whether tracked code differs from it. Changes to the config
    files (conf/**/*.yaml, pipelines/*/study.yaml: what `dvc exp run -S` edits, and values the
    run logs as params anyway) and, under DVC, to dvc.lock and the stages' outputs do not
    count; they are listed in `git_ignored_changes`."""
    commit, paths = git_head(), changed_files()
    if commit is None or paths is None:
        return {}
    code, ignored = split_changes(paths, dvc_outputs())
    tags = {"git_commit": commit, "mlflow.source.git.commit": commit,
            "git_dirty": str(bool(code)).lower()}
    if ignored:
        tags["git_ignored_changes"] = _clip(", ".join(sorted(ignored)), 1000)
    return tags


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


VOLATILE = ("paths", "hydra", "resume", "resume_every_n_steps", "verbose", "results_file",
            "cache_predictions")
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


NAME_JOIN = " · "


def prompt_label(task) -> str | None:
    """The prompt as a run name shows it: its name when not `default`, `custom prompt` for a
    task.template of one's own; None for the default template."""
    templates = task.templates or {}
    if task.template is not None and task.template != templates.get(task.prompt):
        return "custom prompt"
    return None if task.prompt in (None, "default") else str(task.prompt)


def variant_name(cfg: DictConfig) -> str:
    """What sets a job apart from its neighbours, seeds aside (the experiment is the task
    already): the arm, with k when it shows demonstrations (and their order when it is not the
    seed's), the prompt when not `default`, the label budget when set, the model, a reduced
    inference dtype, and the DVC experiment. E.g. `few_shot k=4 · question · n=64 · tiny`."""
    arm = str(cfg.arm.name)
    if cfg.arm.demos:
        arm += f" k={cfg.arm.k}"
        if cfg.arm.get("order_seed") is not None and cfg.arm.order_seed != cfg.seed:
            arm += f" order{cfg.arm.order_seed}"
    parts = [arm, prompt_label(cfg.task), "chat" if cfg.prompt.chat else None,
             None if cfg.train_size is None else f"n={cfg.train_size}", str(cfg.model.name),
             None if cfg.model.api or cfg.inference_dtype == "float32"
             else str(cfg.inference_dtype),
             os.environ.get("DVC_EXP_NAME")]  # dvc exp run -S edits files, not overrides
    return NAME_JOIN.join(p for p in parts if p)


def run_name(cfg: DictConfig) -> str:
    """The run's name: `mlflow.run_name` when one is set, else the variant and the seed (and
    the trial number in a hyper-parameter search), e.g. `few_shot k=4 · question · n=64 ·
    tiny · seed0`."""
    if cfg.mlflow.get("run_name"):
        return str(cfg.mlflow.run_name)
    name = f"{variant_name(cfg)}{NAME_JOIN}seed{cfg.seed}"
    if hpo_trial():
        from hydra.core.hydra_config import HydraConfig

        name += f"{NAME_JOIN}trial {HydraConfig.get().job.num}"
    return name


def job_params(cfg: DictConfig) -> dict[str, str]:
    """The resolved config as params a person can read: every key that can change the result,
    flattened, with secrets replaced by ***; not the label map (Banking77: 77 params; the job
    logs their count, `task.n_labels`, and a hash, `task.labels_hash`; config.yaml holds the
    map), the templates not chosen (`task.template` is the one used), nor a classification
    task's `decoding` (only generation decodes). `mlflow.run_name` is the name the run got."""
    resolved = redact(OmegaConf.to_container(cfg, resolve=True))
    task = {k: v for k, v in resolved["task"].items() if k not in ("labels", "templates")}
    mlflow_cfg = {**resolved["mlflow"], "run_name": run_name(cfg)}
    params = {**resolved, "task": task, "mlflow": mlflow_cfg}
    if cfg.task.type == "classification":
        params.pop("decoding", None)
    return flatten(params)


def redact_override(override: str) -> str:
    """`key=value` from the command line with the value redacted as the config is: *** under a
    secret-looking key, a URI's password and a URL's key in the query string."""
    key, eq, value = override.partition("=")
    if not eq:
        return redact(override)
    leaf = key.lstrip("+~").split(".")[-1]
    return f"{key}={redact({leaf: value})[leaf]}"


def _source(source) -> str:
    """A config source as a folder's path (file://), else `scheme://path`."""
    return source.path if source.schema == "file" else f"{source.schema}://{source.path}"


def hydra_tags() -> dict[str, str]:
    """`overrides`: the job's command-line overrides, one readable line (redacted);
    `config_source`: the folder Hydra composed the config from (and `config_searchpath`, the
    folders searched after it). Nothing outside a Hydra app (tests composing directly)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    hydra = HydraConfig.get()
    tags = {}
    overrides = [redact_override(o) for o in hydra.overrides.task]
    if overrides:
        tags["overrides"] = _clip(" ".join(overrides), 5000)
    sources = [s for s in hydra.runtime.config_sources if s.provider not in ("hydra", "schema")]
    main = [_source(s) for s in sources if s.provider == "main"]
    others = [_source(s) for s in sources if s.provider != "main"]
    if main or others:
        tags["config_source"] = (main or others)[0]
    if main and others:
        tags["config_searchpath"] = _clip(" ".join(others), 5000)
    return tags


WARM_START = False  # warm.py sets it in a job forked from a warm worker


# what `dvc repro` and `dvc exp run` tell the stage commands they start
DVC_ENV = {"DVC_STAGE": "dvc_stage", "DVC_EXP_NAME": "dvc_exp",
           "DVC_EXP_BASELINE_REV": "dvc_baseline_rev"}


def dvc_tags() -> dict[str, str]:
    """Under DVC: the stage (`dvc_stage`), and under `dvc exp run` the experiment's name
    (`dvc_exp`) and the commit it started from (`dvc_baseline_rev`)."""
    return {tag: os.environ[var] for var, tag in DVC_ENV.items() if os.environ.get(var)}


def job_tags(cfg: DictConfig) -> dict[str, str]:
    """What a run is, as tags to filter and group by. `fit`: whether the arm trains weights
    (the arm config's own key), which the report uses rather than arm names. `config_hash`:
    the composed config's hash (the resume key); `cell`: the same without the seeds."""
    cell = config_hash(cfg, drop=CELL_FREE)  # runs of one cell differ in their seeds only
    tags = {"arm": cfg.arm.name, "fit": str(bool(cfg.arm.fit)).lower(), "task": cfg.task.name,
            "model": cfg.model.name, "seed": str(cfg.seed), "train_size": str(cfg.train_size),
            "prompt": str(cfg.task.prompt or ""), "k": str(cfg.arm.k),
            "chat": str(bool(cfg.prompt.chat)).lower(),
            # what the saved view averages over seeds: the name, and the cell it stands for
            # (two learning rates have one name)
            "variant": f"{variant_name(cfg)} #{cell[:8]}",
            "cell": cell, "config_hash": config_hash(cfg)}
    if hpo_trial():
        tags["hpo_trial"] = "true"
    if cfg.task.type == "classification" and not cfg.model.api:  # what test/accuracy ranks by
        tags["calibration"] = str(cfg.scorer.calibration)
    if not cfg.model.api:  # a hosted model runs at whatever precision its provider uses
        tags["inference_dtype"] = str(cfg.inference_dtype)
    if cfg.study:
        tags["study"] = str(cfg.study)
    if WARM_START:
        tags["warm_start"] = "true"
    return {**tags, **hydra_tags(), **dvc_tags(), **git_tags()}


def _probe_server(uri: str) -> None:
    """One quick request: MLflow's own client retries an unreachable server for minutes."""
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=10)
    except requests.RequestException as err:
        raise ConnectionError(f"{redact(uri)} cannot be reached ({type(err).__name__})") from err


def store_lock(tracking_uri: str) -> FileLock:
    """A lock for what parallel jobs must create once: beside a sqlite database (creating its
    tables), else in the temp folder per store (a server shared by jobs on one machine)."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(f"{db}.lock", timeout=600)
    digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
    return FileLock(str(Path(tempfile.gettempdir()) / f"pvf-mlflow-{digest}.lock"), timeout=600)


def use_experiment(tracking_uri: str, name: str, tags: dict[str, str] | None = None):
    """Point mlflow at the store and experiment, creating them if needed, and give the
    experiment those of `tags` it lacks (a tag someone changed since stays theirs).

    A new sqlite store builds its tables on first use, and two jobs doing that at once (a
    joblib sweep, `dvc exp run` in parallel) corrupt it; so is creating one experiment twice.
    A file lock beside the database serialises both; later writes rely on sqlite's own
    locking (MLflow sets a 20 s busy timeout).
    """
    mlflow.set_tracking_uri(tracking_uri)
    if tracking_uri.startswith(("http://", "https://")):
        _probe_server(tracking_uri)
    if not tracking_uri.startswith("sqlite:///"):
        return _experiment(name, tags)
    with store_lock(tracking_uri):
        return _experiment(name, tags)


def _experiment(name: str, tags: dict[str, str] | None):
    experiment = mlflow.set_experiment(name)
    missing = {k: v for k, v in (tags or {}).items() if k not in experiment.tags}
    for key, value in missing.items():
        mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
    return experiment


# MLflow 3's saved views of an experiment's runs table are experiment tags with this prefix:
# {name, createdAt, updatedAt, state}, the state being the table's search and columns as JSON
SAVED_VIEW_TAG = "mlflow.sharedViewState."


def dashboard_views(task_type: str) -> dict[str, str]:
    """Two saved views of the runs table (the `Views` menu of the experiment's Runs tab): the
    job runs (sweep and study parents out) with the Dataset and Models columns and the
    comparison's metrics, best first; and the same averaged over seeds (grouped by the tag
    `variant`, the run name less its seed)."""
    metrics = dashboard_metrics(task_type)
    if not metrics:
        return {}
    state = {"searchFilter": "tags.`pvf.parent` IS NULL",
             "orderByKey": f"metrics.`{metrics[0]}`", "orderByAsc": False,
             "selectedColumns": ["attributes.`Dataset`", "attributes.`Models`",
                                 *(f"metrics.`{key}`" for key in metrics)],
             "runsHiddenMode": "SHOW_ALL"}
    grouped = {**state, "groupBy": {"aggregateFunction": "average", "groupByKeys": [
        {"mode": "tag", "groupByData": "variant"}]}}
    now = int(time.time() * 1000)
    views = {"pvf-runs": ("pvf: compare runs", state),
             "pvf-variants": ("pvf: mean over seeds", grouped)}
    return {SAVED_VIEW_TAG + view_id: json.dumps({"name": name, "createdAt": now,
                                                  "updatedAt": now, "state": json.dumps(view)})
            for view_id, (name, view) in views.items()}


SYSTEM_METRICS_INTERVAL_S = 5  # MLflow's default is 10; MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL


def system_metrics_on(cfg: DictConfig) -> bool:
    """`mlflow.system_metrics` (CPU, memory, disk, network, GPU: `system/*`, sampled every
    SYSTEM_METRICS_INTERVAL_S), unless MLflow's own switch MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING
    says false (the test suite does: a run's keys then do not depend on how long it took)."""
    if os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "").lower() in ("false", "0"):
        return False
    if not cfg.mlflow.get("system_metrics", False):
        return False
    if not os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"):
        from mlflow.system_metrics import set_system_metrics_sampling_interval

        set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL_S)
    return True


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
        experiment = use_experiment(cfg.mlflow.tracking_uri, cfg.mlflow.experiment_name,
                                    dashboard_views(cfg.task.type))
    except Exception as err:  # noqa: BLE001 - any store failure here is a config problem
        raise UserError(
            f"cannot use the MLflow tracking store {redact(cfg.mlflow.tracking_uri)!r} "
            f"({str(err).splitlines()[0][:200]}); fix MLFLOW_TRACKING_URI or mlflow.tracking_uri"
        ) from err
    system_metrics = system_metrics_on(cfg)
    with sigterm_noted():  # a SIGTERM now is raised in the try below, which ends the run
        run = _open_run(cfg, experiment, resume_run_id, system_metrics)
    try:
        raise_if_preempted()
        if not resume_run_id:
            mlflow.log_params(job_params(cfg))
            resolved = redact(OmegaConf.to_container(cfg, resolve=True))
            mlflow.log_text(OmegaConf.to_yaml(OmegaConf.create(resolved)), "config.yaml")
        yield run
    except KeyboardInterrupt as err:
        if isinstance(err, Preempted):
            _safely(mlflow.set_tag, "stopped", "SIGTERM (preempted): the same command resumes")
        _end(RunStatus.KILLED)
        raise
    except BaseException as err:
        record_failure(err)
        _end(RunStatus.FAILED)
        raise
    else:
        mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))


def _open_run(cfg: DictConfig, experiment, resume_run_id: str | None,
              system_metrics: bool) -> mlflow.ActiveRun:
    """Start the job's run (or reopen the interrupted attempt's) under its parent."""
    from .parents import GROUP_TAG, job_group, parent_run
    from .sweep import note_run

    if resume_run_id:
        run = mlflow.start_run(run_id=resume_run_id, log_system_metrics=system_metrics)
        resumed = int(run.data.tags.get("resumed", "0")) + 1
        mlflow.set_tag("resumed", str(resumed))
        ended = {tag: run.data.tags[tag] for tag in ("error", "stopped") if tag in run.data.tags}
        if ended:  # what stopped the attempt this one continues: history, not this run's end
            mlflow.set_tag("resumed_after", next(iter(ended.values())))
            for tag in ended:
                mlflow.MlflowClient().delete_tag(resume_run_id, tag)
        parent = run.data.tags.get(PARENT_RUN_TAG)
    else:
        group = job_group(cfg)
        parent = parent_run(cfg.mlflow.tracking_uri, experiment.experiment_id, group) \
            if group else None
        tags = redact(job_tags(cfg)) | ({GROUP_TAG: group.key} if group else {})
        run = mlflow.start_run(run_name=run_name(cfg), tags=tags, parent_run_id=parent,
                               log_system_metrics=system_metrics)
    note_run(run.info.run_id, parent)
    return run


def _safely(call, *args) -> bool:
    try:
        call(*args)
        return True
    except Exception:  # noqa: BLE001 - the store may be the thing that failed
        return False


def _end(status: int) -> None:
    """End the active run with a failure status; when the store cannot take it (a full disk,
    a lost server), say so in one line instead of a second traceback: the run is ended FAILED
    when its job's key is next used (a fine-tuning job), or stays RUNNING in that store."""
    run = mlflow.active_run()
    if not _safely(mlflow.end_run, RunStatus.to_string(status)) and run is not None:
        log.error("could not mark run %s %s in the tracking store (it cannot be written)",
                  run.info.run_id, RunStatus.to_string(status))
        # MLflow keeps a run it could not end as the active one; the next job of a sweep
        # must be able to start its own (private API: no public way to drop it)
        _safely(lambda: mlflow.tracking.fluent._active_run_stack.get().clear())


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
    except Exception as store_err:  # noqa: BLE001 - the store may be the thing that failed
        log.warning("could not record the failure in MLflow: %s", error_line(store_err))


def lightning_logger(run: mlflow.ActiveRun | None, cfg: DictConfig) -> JobMLFlowLogger | bool:
    if run is None:
        return False
    return JobMLFlowLogger(tracking_uri=cfg.mlflow.tracking_uri, run_id=run.info.run_id)
