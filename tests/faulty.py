"""A fault injected inside a job's run, for the tests of what a sweep does with a job that
fails there (a user's own callback that raises): `+callbacks.fault._target_=tests.faulty.
FailingCallback +callbacks.fault.fail=true`. Every fault a config can show is refused before
the run opens, so the tests need one of their own."""

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
