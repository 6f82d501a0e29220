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
    """Hold Ctrl-C back until the returned function is called: around the creation of a run,
    so that a Ctrl-C lands either before the run exists or inside the block that ends it,
    never in between (a run left RUNNING, or closed FINISHED by MLflow at exit). A SIGINT
    handler that only notes the signal, not a blocked signal mask: the mask is per thread,
    and a process's SIGINT reached another thread (MLflow's, torch's) and was raised at once
    under load. The function restores the handler and re-raises what arrived; calling it
    again does nothing."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    arrived = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: arrived.append(signum))
    done = []

    def release() -> None:
        if not done:
            done.append(True)
            signal.signal(signal.SIGINT, previous)
            if arrived:
                signal.raise_signal(signal.SIGINT)  # to the handler it was held from

    return release
