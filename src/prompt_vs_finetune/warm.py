"""Warm start (docs/performance.md): the console scripts, and the worker their commands fork from.

Under DVC (DVC_ROOT set) or with PVF_WARM=1, a command hands its arguments, working folder,
environment, umask and standard streams over a Unix socket to a warm worker
(`python -m prompt_vs_finetune.warm KEY SYS_PATH`) that has imported pvf's libraries once
(8 s of 2 cores); it forks a child that runs the entry point as a new process would. The
command forwards signals to the child and ends as it ended. This module imports only the
standard library (and the package's code version) until it is the worker.
"""

import atexit
import fcntl
import gc
import hashlib
import importlib.util
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
import warnings
from contextlib import suppress
from functools import partial
from pathlib import Path

from .tracking.provenance import code_version

ENTRIES = {"pvf": ("prompt_vs_finetune.cli", "main"),  # command -> (module, function) it runs
           "pvf-prepare": ("prompt_vs_finetune.cli", "prepare"),
           "pvf-report": ("prompt_vs_finetune.report.cli", "main")}
# What a worker imports before serving: everything a job imports up to its first result
# (not prompt_vs_finetune.cli: it reads the working folder's conf/ when imported).
PRELOAD = ("prompt_vs_finetune.job", "prompt_vs_finetune.backends.local",
           "prompt_vs_finetune.tracking.groups", "prompt_vs_finetune.tracking.sweep",
           "prompt_vs_finetune.metrics", "prompt_vs_finetune.train",
           "mlflow.store.tracking.sqlalchemy_store", "hydra._internal.hydra",
           "hydra.core.override_parser.overrides_parser", "peft", "rouge_score.rouge_scorer",
           "git", "tabulate")
# Variables DVC (and the shell) set differently for every command of one study: not the key
VOLATILE_ENV = ("DVC_", "PVF_WARM", "_", "PWD", "OLDPWD", "SHLVL")
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STARTUP_TIMEOUT_S = 120  # how long the first command waits for a new worker's imports


def enabled() -> bool:
    """PVF_WARM=1 / 0 decides; unset, a command DVC runs is warm. Linux only."""
    chosen = os.environ.get("PVF_WARM", "").strip().lower()
    if chosen in ("0", "false", "no", "off") or not sys.platform.startswith("linux"):
        return False
    return chosen in ("1", "true", "yes", "on") or bool(os.environ.get("DVC_ROOT"))


def launch(entry: str) -> None:
    """Run `entry` in a warm worker when enabled and one can be had, else in this process."""
    if enabled():
        try:
            key = worker_key()
            conn = _connect(key)
            if conn is not None:
                _exit_like_the_child(*_hand_over(conn, entry))
            why = f"see {worker_dir() / key}.log"
        except OSError as err:
            why = str(err)
        print(f"pvf: no warm worker ({why}); running in this process", file=sys.stderr)
    _run_entry(entry)


pvf = partial(launch, "pvf")
prepare = partial(launch, "pvf-prepare")
report = partial(launch, "pvf-report")


def _run_entry(entry: str) -> None:
    # At exit, after the handlers the entry registers (last in, first out): collect once, then
    # freeze the rest, so the shutdown skips collecting the libraries' ~600k objects one cycle
    # at a time (2 s of every command on 2 cores); the operating system frees them.
    atexit.register(gc.freeze)
    atexit.register(gc.collect)  # garbage left in a cycle still gets its finalizer
    module, function = ENTRIES[entry]
    try:
        getattr(importlib.import_module(module), function)()
    except KeyboardInterrupt:  # anywhere (data load, scoring, a report): one line, as a shell
        print(f"error: {entry} stopped by Ctrl-C (a run it had open ends KILLED)",
              file=sys.stderr)
        sys.exit(130)  # 128 + SIGINT


def worker_key() -> str:
    """What a worker's imports depend on: this package's sources, the interpreter and its
    installed distributions, and the environment (less VOLATILE_ENV)."""
    digest = hashlib.sha256(code_version().encode())
    for folder in sys.path:  # a pip install or uninstall renames or adds entries here
        if folder.endswith(("site-packages", "dist-packages")) and os.path.isdir(folder):
            digest.update("\n".join(sorted(os.listdir(folder))).encode())
    env = {k: v for k, v in os.environ.items() if not k.startswith(VOLATILE_ENV)}
    digest.update(json.dumps([sys.executable, sys.version, sys.path, str(sys.flags),
                              sys.warnoptions, sorted(env.items())]).encode())
    return digest.hexdigest()[:24]


def worker_dir() -> Path:
    """A folder only this user can use (a socket in it runs code as this user)."""
    folder = Path(tempfile.gettempdir()) / f"pvf-warm-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    stat = folder.stat()
    if stat.st_uid != os.getuid() or stat.st_mode & 0o077:
        raise OSError(f"{folder} is not private to this user")
    return folder


def _locked(handle) -> bool:
    """Take the lock a worker holds for its life; False when another process holds it."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _connect(key: str) -> socket.socket | None:
    """A connection to the worker with this key, starting one if there is none; None when a
    worker for it cannot start (its imports failed: see its log)."""
    folder = worker_dir()
    address, failed = folder / f"{key}.sock", folder / f"{key}.failed"
    if failed.exists():
        return None
    deadline, worker = time.monotonic() + STARTUP_TIMEOUT_S, None
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(str(address))
            return conn
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()
        if failed.exists() or time.monotonic() > deadline:
            return None
        with open(folder / f"{key}.lock", "a") as lock:
            starting_or_serving = not _locked(lock)
        if not starting_or_serving:
            if worker is not None and worker.poll() is not None:
                return None  # ours started and ended without serving (its log says why)
            if worker is None:
                worker = _start_worker(key, folder)
        time.sleep(0.05)


def _start_worker(key: str, folder: Path):
    """The worker, in a session of its own (a terminal's Ctrl-C is the command's to forward),
    with this command's environment and import path."""
    with open(folder / f"{key}.log", "w") as log:
        flags = subprocess._args_from_interpreter_flags()  # -W, -X, -O ... as this Python's
        return subprocess.Popen(
            [sys.executable, *flags, "-m", "prompt_vs_finetune.warm", key, json.dumps(sys.path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/", start_new_session=True,
            close_fds=True)


def _hand_over(conn: socket.socket, entry: str):
    """(A reader of the worker's messages, the child's pid); OSError if it took nothing."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    streams = [fd for fd in (0, 1, 2) if _is_open(fd)]
    umask = os.umask(0)
    os.umask(umask)
    request = {"entry": entry, "argv": sys.argv, "path": sys.path, "cwd": os.getcwd(),
               "env": dict(os.environ), "umask": umask, "streams": streams,
               "main_module": spec.name if spec else None,
               "sigint_ignored": signal.getsignal(signal.SIGINT) is signal.SIG_IGN}
    socket.send_fds(conn, [b"\n"], streams)
    conn.sendall(json.dumps(request).encode() + b"\n")
    reader = conn.makefile("rb")
    line = reader.readline()
    if not line.endswith(b"\n"):
        raise OSError("the worker closed the connection")
    return reader, json.loads(line)["pid"]


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _exit_like_the_child(reader, child: int) -> None:
    """Forward signals to the child until it ends, then end as it ended: its exit code, or
    the signal that killed it."""
    def forward(signum, _frame):
        with suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in FORWARDED:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, forward)
    try:
        line = reader.readline()
    except OSError:  # not a reason to run the command a second time, here
        line = b""
    if not line.endswith(b"\n"):
        raise SystemExit("pvf: the warm worker went away before the job ended; run the "
                         "command again (PVF_WARM=0 runs it without a worker)")
    status = json.loads(line)["status"]
    sys.stdout.flush()
    sys.stderr.flush()
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def serve(key: str) -> tuple | None:
    """Import, then fork a child per request until idle. Returns in a child only, with what it
    needs to become the command; the worker itself ends by returning None."""
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
    """Import PRELOAD, keeping the warnings the imports showed (each child shows them, as a
    new process would), and check the worker may fork."""
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
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}
    last = time.monotonic()
    print(f"worker {os.getpid()} serving {listener.getsockname()}", flush=True)
    while children or time.monotonic() - last < idle_s:
        for event, _ in selector.select(timeout=1.0):
            if event.fileobj is not listener:
                os.read(wake_r, 512)
                continue
            conn, _ = listener.accept()
            try:
                request, streams = _request(conn)
            except (OSError, ValueError) as err:
                print(f"bad request: {err}", flush=True)
                conn.close()
                continue
            pid = os.fork()
            if pid == 0:  # the child: drop the worker's own resources, become the command
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                selector.close()
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
        while children:  # tell each command how its child ended
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = children.pop(pid)
            _send(conn, {"status": status})
            conn.close()
            last = time.monotonic()
    print(f"worker {os.getpid()}: {idle_s:g} s without a job; exiting", flush=True)
    return None


def _send(conn: socket.socket, message: dict) -> None:
    with suppress(OSError):  # the command is gone (its child then kills itself)
        conn.sendall(json.dumps(message).encode() + b"\n")


def _request(conn: socket.socket) -> tuple[dict, list[int]]:
    """The command's request (a line of JSON) and the streams sent with the byte before it."""
    _, fds, _, _ = socket.recv_fds(conn, 1, 3)
    with conn.makefile("rb") as reader:  # the command writes nothing after this line
        request = json.loads(reader.readline())
    if request.get("entry") not in ENTRIES or len(fds) != len(request.get("streams", ())):
        raise ValueError(f"unknown entry or streams: {request.get('entry')!r}")
    return request, fds


def become(conn: socket.socket, request: dict, streams: list[int], warned: list) -> None:
    """In the child: take on the command's streams, folder, environment, umask, arguments,
    import path and signals, reseed what a new process seeds, show the imports' warnings,
    then run its entry point."""
    import numpy
    import torch

    sys.stdout.flush()
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_RDWR)
    given = dict(zip(request["streams"], streams, strict=True))
    for fd in (0, 1, 2):
        os.dup2(given.get(fd, devnull), fd)
    for fd in (*streams, devnull):
        os.close(fd)
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ["PVF_WARM"] = "0"  # what this job starts itself (DDP ranks, ...) starts cold
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
    numpy.random.seed()  # (random reseeds itself in a forked child)
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
