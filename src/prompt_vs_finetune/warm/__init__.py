"""Warm start (docs/performance.md), the console scripts: a command, importing only the stdlib,
hands itself to a worker that imported pvf's libraries once (worker.py) and ends as its child."""

import atexit
import fcntl
import gc
import hashlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from functools import partial
from pathlib import Path

from ..tracking.provenance import code_version

ENTRIES = {"pvf": ("prompt_vs_finetune.cli", "main"),  # command -> (module, function) it runs
           "pvf-prepare": ("prompt_vs_finetune.cli", "prepare"),
           "pvf-report": ("prompt_vs_finetune.report", "main")}
# Variables DVC (and the shell) set differently for every command of one study: not the key
VOLATILE_ENV = ("DVC_", "PVF_WARM", "_", "PWD", "OLDPWD", "SHLVL")
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
                _run_in_worker(conn, entry)
            why = f"see {worker_dir() / key}.log"
        except OSError as err:
            why = str(err)
        print(f"pvf: no warm worker ({why}); running in this process", file=sys.stderr)
    _run_entry(entry)


pvf = partial(launch, "pvf")
prepare = partial(launch, "pvf-prepare")
report = partial(launch, "pvf-report")


def _run_entry(entry: str) -> None:
    # At exit, after the entry's handlers (last in, first out): collect, then freeze the rest so
    # the shutdown skips the libraries' ~600k objects (2 s on 2 cores; the system frees them).
    atexit.register(gc.freeze)
    atexit.register(gc.collect)  # garbage left in a cycle still gets its finalizer
    module, function = ENTRIES[entry]
    from ..errors import UserError

    try:
        getattr(importlib.import_module(module), function)()
    except UserError as err:  # pvf-report's (pvf says its own): one line
        sys.exit(f"error: {err}")
    except KeyboardInterrupt:  # anywhere (data load, scoring, a report): one line, as a shell
        print(f"error: {entry} stopped by Ctrl-C (a run it had open ends KILLED)",
              file=sys.stderr)
        sys.exit(130)  # 128 + SIGINT


def worker_key() -> str:
    """What a worker's imports depend on: the sources, the interpreter, its packages, the env."""
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
    """A connection to the worker with this key, started if need be; None if it cannot start."""
    folder = worker_dir()
    deadline, worker = time.monotonic() + STARTUP_TIMEOUT_S, None
    while not (folder / f"{key}.failed").exists() and time.monotonic() <= deadline:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(str(folder / f"{key}.sock"))
            return conn
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()
        with open(folder / f"{key}.lock", "a") as lock:
            free = _locked(lock)  # no worker is starting or serving
        if free and worker is not None and worker.poll() is not None:
            return None  # ours started and ended without serving (its log says why)
        if free and worker is None:
            worker = _start_worker(key, folder)
        time.sleep(0.05)
    return None


def _start_worker(key: str, folder: Path):
    """In a session of its own: a terminal's Ctrl-C is the command's to forward."""
    with open(folder / f"{key}.log", "w") as log:
        flags = subprocess._args_from_interpreter_flags()  # -W, -X, -O ... as this Python's
        return subprocess.Popen(
            [sys.executable, *flags, "-m", "prompt_vs_finetune.warm.worker", key,
             json.dumps(sys.path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/", start_new_session=True)


def _run_in_worker(conn: socket.socket, entry: str) -> None:
    """Hand the worker this command, forward signals to its child, and end as the child ended.
    OSError: the worker took nothing."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    umask = os.umask(0)
    os.umask(umask)
    request = {"entry": entry, "argv": sys.argv, "path": sys.path, "cwd": os.getcwd(),
               "env": dict(os.environ), "umask": umask, "main_module": spec.name if spec else None,
               "sigint_ignored": signal.getsignal(signal.SIGINT) is signal.SIG_IGN}
    streams = [fd if _is_open(fd) else os.open(os.devnull, os.O_RDWR) for fd in (0, 1, 2)]
    socket.send_fds(conn, [b"\n"], streams)
    conn.sendall(json.dumps(request).encode() + b"\n")
    reader = conn.makefile("rb")
    line = reader.readline()
    if not line.endswith(b"\n"):
        raise OSError("the worker closed the connection")
    child = json.loads(line)["pid"]

    def forward(signum, _frame):
        with suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
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


def _is_open(fd: int) -> bool:
    try:
        return os.fstat(fd) is not None
    except OSError:
        return False
