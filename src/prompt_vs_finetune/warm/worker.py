"""Warm start's worker (`python -m prompt_vs_finetune.warm.worker KEY SYS_PATH`): import pvf's
libraries once, then fork a child per command that becomes it, as a new process would run it."""

import gc
import importlib.util
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import types
import warnings
from contextlib import suppress

from . import ENTRIES, _locked, _run_entry, worker_dir

# What a worker imports before serving: everything a job imports up to its first result
# (not prompt_vs_finetune.cli: it reads the working folder's conf/ when imported).
PRELOAD = ("prompt_vs_finetune.job", "prompt_vs_finetune.backends.local",
           "prompt_vs_finetune.tracking.naming", "prompt_vs_finetune.tracking.sweep",
           "prompt_vs_finetune.metrics",
           "mlflow.store.tracking.sqlalchemy_store", "hydra._internal.hydra",
           "hydra.core.override_parser.overrides_parser", "peft", "rouge_score.rouge_scorer",
           "git", "tabulate", "transformers.optimization")  # a fit's (lazy in a new process)


def serve(key: str) -> tuple | None:
    """Import, then fork a child per request until idle: returns what a child needs, or None."""
    folder = worker_dir()
    lock = open(folder / f"{key}.lock", "a")  # held for the worker's life
    if not _locked(lock):
        return None  # another worker with this key is starting or serving
    try:
        warned = preload()
    except Exception as err:
        (folder / f"{key}.failed").write_text(f"{type(err).__name__}: {err}\n")
        raise
    gc.freeze()  # children then copy fewer pages (CPython's advice for forking servers)
    address = folder / f"{key}.sock"
    address.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(address))
    listener.listen(64)
    child = _serve_until_idle(listener, float(os.environ.get("PVF_WARM_IDLE", "120")), lock)
    if child is None:  # idle: leave nothing behind
        for suffix in ("sock", "log", "lock"):
            (folder / f"{key}.{suffix}").unlink(missing_ok=True)
        return None
    return (*child, warned)


def preload() -> list:
    """Import PRELOAD, keeping the warnings shown for each child to show; check it may fork."""
    warned, show = [], warnings.showwarning  # not catch_warnings: it would undo the filters

    def keep(message, category, filename, lineno, file=None, line=None):
        warned.append((message, category, filename, lineno, line))

    warnings.showwarning = keep
    try:
        for module in PRELOAD:
            importlib.import_module(module)
    finally:
        warnings.showwarning = show
    if "prompt_vs_finetune.cli" in sys.modules:
        raise RuntimeError("prompt_vs_finetune.cli was imported: its config folder would be "
                           "the worker's, not the command's")
    # fork copies the calling thread only: a lock another Python thread holds stays held in
    # every child. (The native pools the imports start, OpenBLAS's and jemalloc's, re-create
    # themselves after fork; torch's OpenMP pool does not, so nothing here may compute.)
    if threading.active_count() > 1:
        raise RuntimeError(f"{threading.active_count()} Python threads after the imports; "
                           "forking is unsafe")
    return warned


def _serve_until_idle(listener: socket.socket, idle_s: float, lock) -> tuple | None:
    wake_r, wake_w = os.pipe()  # SIGCHLD wakes the select up
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    children: dict[int, socket.socket] = {}
    last = time.monotonic()
    print(f"worker {os.getpid()} serving {listener.getsockname()}", flush=True)
    while children or time.monotonic() - last < idle_s:
        ready, _, _ = select.select([listener, wake_r], [], [], 1.0)
        if wake_r in ready:
            os.read(wake_r, 512)
        while children:  # tell each command how its child ended
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = children.pop(pid)
            _send(conn, {"status": status})
            conn.close()
            last = time.monotonic()
        if listener not in ready:
            continue
        conn, _ = listener.accept()
        try:  # the streams come with a byte, then the request: a line of JSON
            _, streams, _, _ = socket.recv_fds(conn, 1, 3)
            with conn.makefile("rb") as reader:  # the command writes nothing after this line
                request = json.loads(reader.readline())
            if request.get("entry") not in ENTRIES or len(streams) != 3:
                raise ValueError(f"unknown entry or streams: {request.get('entry')!r}")
        except (OSError, ValueError) as err:
            print(f"bad request: {err}", flush=True)
            conn.close()
            continue
        pid = os.fork()
        if pid == 0:  # the child: drop the worker's own resources, become the command
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for resource in (listener, lock, *children.values()):  # the worker's flock
                resource.close()  # stays: its own descriptor still holds it
            os.close(wake_r)
            os.close(wake_w)
            return conn, request, streams
        for fd in streams:
            os.close(fd)
        _send(conn, {"pid": pid})
        children[pid] = conn
        last = time.monotonic()
    print(f"worker {os.getpid()}: {idle_s:g} s without a job; exiting", flush=True)
    return None


def _send(conn: socket.socket, message: dict) -> None:
    with suppress(OSError):  # the command is gone (its child then kills itself)
        conn.sendall(json.dumps(message).encode() + b"\n")


def become(conn: socket.socket, request: dict, streams: list[int], warned: list) -> None:
    """In the child: take on the command's process state, then run its entry point."""
    import numpy
    import torch

    sys.stdout.flush()
    sys.stderr.flush()
    for fd, given in enumerate(streams):  # a closed one came as /dev/null
        os.dup2(given, fd)
        os.close(given)
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    os.environ.clear()  # PVF_WARM=0: what this job starts itself (DDP ranks, ...) starts cold
    os.environ.update(request["env"], PVF_WARM="0")
    sys.argv = request["argv"]
    sys.path[:] = request["path"]
    for name, fd, mode in (("stdin", 0, "r"), ("stdout", 1, "w"), ("stderr", 2, "w")):
        old = getattr(sys, name)
        stream = open(fd, mode, closefd=False, encoding=old.encoding, errors=old.errors,
                      buffering=1 if mode == "w" and (fd == 2 or os.isatty(fd)) else -1)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)
    signal.signal(signal.SIGINT, signal.SIG_IGN if request["sigint_ignored"]
                  else signal.default_int_handler)
    main = types.ModuleType("__main__")  # what launchers (Lightning's DDP) re-run
    main.__file__ = request["argv"][0]
    main.__spec__ = (importlib.util.find_spec(request["main_module"])
                     if request["main_module"] else None)
    sys.modules["__main__"] = main
    numpy.random.seed()  # (`random` reseeds itself in a forked child)
    torch.seed()

    def die_with_the_command() -> None:  # the command never writes again: EOF = it is gone
        try:
            conn.recv(1)
        finally:
            os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=die_with_the_command, daemon=True).start()
    for message, category, filename, lineno, line in warned:
        warnings.showwarning(message, category, filename, lineno, line=line)
    importlib.import_module("prompt_vs_finetune.tracking.naming").WARM_START = True  # its tag
    _run_entry(request["entry"])


if __name__ == "__main__":
    sys.path[:] = json.loads(sys.argv[2])  # the command's: what it would import from
    child = serve(sys.argv[1])
    if child is not None:
        become(*child)
