"""SIGTERM as a preemption: what SLURM, Kubernetes or a spot instance sends a job before it
kills it. The job stops at a safe point, its run ends KILLED and a fine-tuning job keeps its
resume state, so the same command continues (exit code 143, what a scheduler expects).

Outside Lightning the signal raises `Preempted` at once. While Lightning runs (fit or test)
it is only noted: Lightning's own handler, which calls this one too, stops after the current
batch (the resume callback checkpoints that batch first), and its `SIGTERMException` becomes
`Preempted` when it leaves `lightning_stops` (backends/local.py; this module imports no
Lightning, so a hosted job never loads it).
"""

import signal
from contextlib import contextmanager

from .errors import Preempted

_noting = False  # inside `sigterm_noted`: SIGTERM is only noted
_received = False


def _handler(signum, frame) -> None:
    global _received
    _received = True
    if not _noting:
        raise Preempted("SIGTERM")


@contextmanager
def sigterm_noted():
    """SIGTERM only noted for the block: while Lightning runs (its handler stops at a safe
    point) and while a run opens (raised halfway, the run would exist but nobody would end
    it); `raise_if_preempted` raises it after."""
    global _noting
    outer, _noting = _noting, True
    try:
        yield
    finally:
        _noting = outer


def raise_if_preempted() -> None:
    if _received and not _noting:
        raise Preempted("SIGTERM")


@contextmanager
def sigterm_as_preemption():
    """For the length of a job: SIGTERM stops it as a preemption."""
    global _received
    _received = False
    try:
        previous = signal.signal(signal.SIGTERM, _handler)
    except ValueError:  # not the main thread (a launcher's worker): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def hold_interrupts():
    """Hold Ctrl-C back (SIGINT, blocked at the OS) until the returned function is called:
    around the creation of a run, so that a Ctrl-C lands either before the run exists or
    inside the block that ends it, never in between (a run left RUNNING). The function
    delivers what arrived meanwhile; calling it again does nothing."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    done = []

    def release() -> None:
        if not done:
            done.append(True)
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    return release
