"""One MLflow run per job, nested under its group's parent run; the job opens it (Lightning's
logger would end it after `fit`) and ends it FINISHED, FAILED or KILLED (docs/reliability.md)."""

import logging
import os
import signal
import socket
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import SimpleNamespace

import mlflow
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from ..errors import Preempted, UserError, causes, first_line
from .keys import GROUP_TAG, PARENT_RUN_TAG, PARENT_TAG
from .naming import Group, JobRecord
from .secrets import redact
from .store import dashboard_views, store_lock, store_problem, system_metrics_on, use_experiment
from .sweep import note_run

log = logging.getLogger(__name__)

_sigterm = SimpleNamespace(received=False, noting=False)  # noting: inside `sigterm_noted`


def _on_sigterm(signum, frame) -> None:
    _sigterm.received = True
    raise_if_preempted()


@contextmanager
def sigterm_noted():
    """SIGTERM only noted for the block (`raise_if_preempted` raises it after): while Lightning
    runs (its handler stops at a safe point) and while a run opens (nobody would end it)."""
    outer, _sigterm.noting = _sigterm.noting, True
    try:
        yield
    finally:
        _sigterm.noting = outer


def raise_if_preempted() -> None:
    if _sigterm.received and not _sigterm.noting:
        raise Preempted("SIGTERM")


@contextmanager
def sigterm_as_preemption():
    """For one job: SIGTERM stops it as a preemption, forgotten after (by a hybrid's teacher)."""
    _sigterm.received = False
    main = threading.current_thread() is threading.main_thread()  # else a launcher's worker
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        _sigterm.received = False


def hold_interrupts():
    """Hold Ctrl-C back until the returned function is called, which re-raises it (a handler:
    a signal mask is per thread, and MLflow's or torch's would get it)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    arrived = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: arrived.append(signum))

    def release() -> None:
        signal.signal(signal.SIGINT, previous)
        if arrived:
            signal.raise_signal(signal.SIGINT)  # to the handler it was held from

    return release


def is_rank_zero() -> bool:
    """False in a DDP rank > 0 (it logs nothing), read as Lightning's `rank_zero_only` does."""
    keys = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
    return int(next((os.environ[key] for key in keys if key in os.environ), 0)) == 0


@contextmanager
def mlflow_run(settings: DictConfig, record: JobRecord | None, resume_run_id: str | None = None
               ) -> Iterator[mlflow.ActiveRun | None]:
    """Open the job's run (or reopen an interrupted attempt's), end it with the job's outcome;
    `settings`: the `mlflow` group. Yields None on DDP ranks > 0 (no `record` there)."""
    if not is_rank_zero():
        yield None
        return
    try:
        experiment = use_experiment(settings.tracking_uri, settings.experiment_name,
                                    dashboard_views(record.task_type))
    except Exception as err:  # noqa: BLE001 - one line: the store's fault, else its address
        raise UserError("cannot use " + (store_problem(err, settings.tracking_uri) or (
            f"the MLflow tracking store {redact(settings.tracking_uri)!r} ({first_line(err, 200)}"
            "); fix MLFLOW_TRACKING_URI or mlflow.tracking_uri"))) from err
    release = hold_interrupts()  # a Ctrl-C now is raised in the try below, which ends the run
    try:
        with sigterm_noted():  # so is a SIGTERM
            run = _open_run(settings.tracking_uri, experiment.experiment_id, record,
                            resume_run_id, system_metrics_on(settings.get("system_metrics")))
    except BaseException:
        release()
        raise
    try:
        release()
        raise_if_preempted()
        if not resume_run_id:
            mlflow.log_params(record.params)
            mlflow.log_text(record.config_yaml, "config.yaml")
        yield run
    except BaseException as err:
        _end(err)
        raise
    mlflow.end_run("FINISHED")


def _open_run(tracking_uri: str, experiment_id: str, record: JobRecord,
              resume_run_id: str | None, system_metrics: bool) -> mlflow.ActiveRun:
    owner = {"pvf.pid": str(os.getpid()), "pvf.host": socket.gethostname()}  # alive or gone
    if resume_run_id:
        run = mlflow.start_run(run_id=resume_run_id, log_system_metrics=system_metrics)
        mlflow.set_tag("resumed", str(int(run.data.tags.get("resumed", "0")) + 1))
        ended = [tag for tag in ("error", "stopped") if tag in run.data.tags]
        if ended:  # what stopped the attempt this one continues: history, not its end
            mlflow.set_tag("resumed_after", run.data.tags[ended[0]])
        for tag in ended:
            mlflow.delete_tag(tag)
        mlflow.set_tags(owner)
        parent = run.data.tags.get(PARENT_RUN_TAG)
    else:
        group = record.group
        parent = parent_run(tracking_uri, experiment_id, group) if group else None
        tags = record.tags | ({GROUP_TAG: group.key} if group else {})
        end_orphans(experiment_id)
        run = mlflow.start_run(run_name=record.name, tags=tags | owner,
                               parent_run_id=parent, log_system_metrics=system_metrics)
    note_run(run.info.run_id, parent)
    return run


def parent_run(tracking_uri: str, experiment_id: str, group: Group) -> str | None:
    """The group's parent run, found by its tags or created FINISHED; None if the store refuses."""
    client = MlflowClient(tracking_uri)
    try:
        with store_lock(tracking_uri):
            found = client.search_runs([experiment_id], f"tags.`{PARENT_TAG}` = 'true' and "
                                       f"tags.`{GROUP_TAG}` = '{group.key}'",
                                       order_by=["attributes.start_time ASC"])
            if found:
                return found[0].info.run_id
            run = client.create_run(experiment_id, run_name=group.name,
                                    tags={PARENT_TAG: "true", GROUP_TAG: group.key, **group.tags})
            client.set_terminated(run.info.run_id, "FINISHED")
            return run.info.run_id
    except Exception as err:  # noqa: BLE001 - nesting is a convenience; the job's run counts
        log.warning("could not find or create the parent run of %s: %s", group.key,
                    store_problem(err, tracking_uri) or first_line(err))
        return None


def end_orphans(experiment_id: str) -> None:
    """End KILLED, saying why, this host's runs left RUNNING by a gone process, or by this one
    (a job whose store could not take its end: the next job's run is not open yet)."""
    client, host = MlflowClient(), socket.gethostname()
    for run in client.search_runs([experiment_id], filter_string=(
            f"tags.`pvf.host` = '{host}' and attributes.status = 'RUNNING'")):
        pid = run.data.tags.get("pvf.pid", "")
        if not pid.isdigit() or (process_alive(pid) and int(pid) != os.getpid()):
            continue
        client.set_tag(run.info.run_id, "stopped", f"its process ({pid}) ended without "
                       "closing it, or could not (the store failed); ended by the next job")
        client.set_terminated(run.info.run_id, "KILLED")
        log.warning("ended run %s KILLED: left RUNNING by process %s", run.info.run_id, pid)


def process_alive(pid, other_users: bool = True) -> bool:
    """Whether process `pid` runs on this host (another user's process: `other_users`)."""
    try:
        os.kill(int(pid), 0)
    except PermissionError:
        return other_users
    except (OSError, TypeError, ValueError):
        return False
    return True


def _end(err: BaseException) -> None:
    """End the active run KILLED (Ctrl-C, SIGTERM) or FAILED (tag `error`, traceback.txt); a
    run whose store failed is left to the next job (not retried for minutes more)."""
    run = mlflow.active_run()
    status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
    broken = store_problem(err, mlflow.get_tracking_uri())
    try:
        if broken and "cannot be reached" in broken:
            raise ConnectionError(broken)
        if isinstance(err, Preempted):
            mlflow.set_tag("stopped", "SIGTERM (preempted): the same command resumes")
        elif status == "FAILED" and not broken:
            mlflow.set_tag("error", redact(error_line(err)))
            mlflow.log_text(redact("".join(traceback.format_exception(err))), "traceback.txt")
        mlflow.end_run(status)
    except Exception:  # noqa: BLE001 - the store may be the thing that failed
        log.warning("could not mark run %s %s in the tracking store; the next job ends it",
                    run.info.run_id, status)
        # the next job of a sweep must be able to start its own run (no public API)
        with suppress(Exception):
            mlflow.tracking.fluent._active_run_stack.get().clear()


def error_line(err: BaseException) -> str:
    """`Type: first line`, and the root cause's (Hydra's InstantiationException: a target)."""
    *_, root = causes(err, implicit=False)
    return " <- ".join(f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"
                       for e in ((err,) if root is err else (err, root)))[:500]
