"""A fault injected inside a job's run, for the tests of what a sweep does with a job that
fails there (a user's own callback that raises): `+callbacks.fault._target_=tests.faulty.
FailingCallback +callbacks.fault.fail=true`. Every fault a config can show is refused before
the run opens, so the tests need one of their own."""

from hydra.experimental.callback import Callback as HydraCallback
from lightning.pytorch.callbacks import Callback


class FailingCallback(Callback):
    def __init__(self, fail: bool = False):
        self.fail = fail

    def on_test_start(self, trainer, pl_module) -> None:
        if self.fail:
            raise RuntimeError("injected fault (tests/faulty.py)")


def interrupt() -> None:
    """An entry point that the user stops with Ctrl-C (wherever it was)."""
    raise KeyboardInterrupt


def ctrl_c_as_a_run_opens(call: str) -> str:
    """A Python program that runs `call` (statements; `sys` is imported) with a Ctrl-C sent the
    moment MLflow has created a run, and exits 130 on KeyboardInterrupt: for a process of its
    own, since a signal reaches the main thread only."""
    return f"""
import os, signal, sys
import mlflow

# Python's own Ctrl-C handler: a suite started in the background by a non-interactive shell
# ignores SIGINT, and this program would inherit that (then exit 0, not 130)
signal.signal(signal.SIGINT, signal.default_int_handler)
real = mlflow.start_run

def start_then_ctrl_c(*args, **kwargs):
    run = real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGINT)  # as the run has just been created
    return run

mlflow.start_run = start_then_ctrl_c
try:
    exec({call!r})
except KeyboardInterrupt:
    sys.exit(130)
"""


# what SQLite says when the disk is full (what grows the file fails; an update in place may
# still fit), or when another process holds the store locked past the busy timeout (20 s)
STORE_ERRORS = {"full": ("INSERT", "database or disk is full"),
                "locked": ("", "database is locked")}


def break_store(kind: str, db: str) -> None:
    """From now on this process's SQLite store is `full`, `read_only`, `locked` by another
    process, or `truncated` to half its size."""
    import os
    import sqlite3

    from sqlalchemy import Engine, event
    from sqlalchemy.pool import Pool

    if kind == "truncated":
        os.truncate(db, os.path.getsize(db) // 2)
    elif kind == "read_only":  # SQLite's own refusal: "attempt to write a readonly database"
        @event.listens_for(Pool, "checkout")
        def checkout(connection, record, proxy) -> None:
            connection.execute("PRAGMA query_only = 1")
    else:
        statements, message = STORE_ERRORS[kind]

        @event.listens_for(Engine, "before_cursor_execute")
        def execute(connection, cursor, statement, *args) -> None:
            if statement.lstrip().upper().startswith(statements):
                raise sqlite3.OperationalError(message)


class StoreFault(Callback):
    """The job's store breaks (`break_store`) once its run is open and the test set scored,
    before the job logs its results: `+callbacks.fault._target_=tests.faulty.StoreFault
    +callbacks.fault.kind=full cache_predictions=false` (cached predictions run no test)."""

    def __init__(self, kind: str):
        self.kind = kind

    def on_test_end(self, trainer, pl_module) -> None:
        import mlflow

        break_store(self.kind, mlflow.get_tracking_uri().removeprefix("sqlite:///"))


class BreakStoreAtSweepEnd(HydraCallback):
    """The sweep's store breaks as the sweep ends, before its summary is logged (Hydra calls the
    end callbacks last added first): `+hydra.callbacks.fault._target_=tests.faulty.
    BreakStoreAtSweepEnd +hydra.callbacks.fault.kind=truncated`."""

    def __init__(self, kind: str):
        self.kind = kind

    def on_multirun_end(self, config, **kwargs) -> None:
        break_store(self.kind, config.mlflow.tracking_uri.removeprefix("sqlite:///"))
