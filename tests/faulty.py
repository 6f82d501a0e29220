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
