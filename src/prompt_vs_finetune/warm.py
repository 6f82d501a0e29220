"""Warm start: a study's jobs fork from one process that has already imported pvf's libraries.

A `pvf` process spends about 8 s of 2 CPU cores importing torch, Lightning, transformers and
MLflow before it reads its config. Measured on the real model (2026-12-06, quiet, whole
process, median of 5): a `model=smollm2` zero-shot job served from the prediction cache takes
2.5 s forked from a warm worker against 11.0 s as a new process; over the real-model study's 99
commands that is about 14 of its 130 minutes (11%). A README job (`pvf -m ...` in a shell) does
not use it. A warm worker imports them once, then forks one child per `pvf` / `pvf-prepare` /
`pvf-report` command. The command passes its arguments, working folder, environment, umask and
standard streams to the worker over a Unix socket; the child takes them on and runs the entry
point as a new process would (its own pid, RNG seeds, signal handlers, exit through the
interpreter's own shutdown). The command waits, forwards SIGINT / SIGTERM / SIGHUP to the
child, and ends as the child ended; if the command is killed outright (SIGKILL), the child
kills itself. The run is tagged `warm_start`.

When: under DVC (`dvc repro`, `dvc exp run` set DVC_ROOT), or anywhere with PVF_WARM=1;
PVF_WARM=0 turns it off. Linux only. A worker only serves commands with its key: the
package's source files, the Python and its installed distributions, and the environment less
DVC's per-stage variables (libraries read some variables once, at import). An edited source
file, an installed package or a changed variable therefore gets another worker. A worker
exits after PVF_WARM_IDLE seconds without a job (default 120); its log is beside its socket.

This module is the commands' entry point, so the client side imports only the standard
library; the heavy imports happen in the worker (`preload`).
"""

import hashlib
import json
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path

from .tracking.provenance import code_version

ENTRIES = {  # command -> (module, function) it runs
    "pvf": ("prompt_vs_finetune.cli", "main"),
    "pvf-prepare": ("prompt_vs_finetune.cli", "prepare"),
    "pvf-report": ("prompt_vs_finetune.report.cli", "main"),
}
# What a worker imports before serving: everything a job imports up to its first result
# (not prompt_vs_finetune.cli: it reads the working folder's conf/ when imported).
PRELOAD = ("prompt_vs_finetune.job", "prompt_vs_finetune.backends.local",
           "prompt_vs_finetune.tracking.naming", "prompt_vs_finetune.tracking.sweep",
           "prompt_vs_finetune.metrics", "prompt_vs_finetune.train",
           "mlflow.store.tracking.sqlalchemy_store", "hydra._internal.hydra",
           "hydra.core.override_parser.overrides_parser", "peft", "rouge_score.rouge_scorer",
           "git", "tabulate")
# Variables DVC (and the shell) set differently for every command of one study: not the key
VOLATILE_ENV = ("DVC_", "PVF_WARM", "_", "PWD", "OLDPWD", "SHLVL")
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STARTUP_TIMEOUT_S = 120  # how long the first command waits for a new worker's imports


def enabled() -> bool:
    """PVF_WARM=1 / 0 decides; unset, a command DVC runs is warm."""
    chosen = os.environ.get("PVF_WARM", "").strip().lower()
    if chosen in ("0", "false", "no", "off") or not sys.platform.startswith("linux"):
        return False
    return chosen in ("1", "true", "yes", "on") or bool(os.environ.get("DVC_ROOT"))


def launch(entry: str) -> None:
    """A console script: run `entry` in a warm worker when enabled and one can be had, else
    here, in this process."""
    if enabled():
        try:
            key = worker_key()
            conn = _connect(key)
            if conn is not None:
                _exit_like(_wait_for(*_hand_over(conn, entry)))
            why = f"see {worker_dir() / key}.log"
        except OSError as err:
            why = str(err)
        print(f"pvf: no warm worker ({why}); running in this process", file=sys.stderr)
    _run_entry(entry)


def pvf() -> None:
    launch("pvf")


def prepare() -> None:
    launch("pvf-prepare")


def report() -> None:
    launch("pvf-report")


def _run_entry(entry: str) -> None:
    import atexit
    import importlib

    atexit.register(_skip_final_collection)  # handlers run last-in first: cold, it runs last
    module, function = ENTRIES[entry]
    try:
        getattr(importlib.import_module(module), function)()
    except KeyboardInterrupt:  # anywhere (data load, scoring, a report): one line, as a shell
        print(f"error: {entry} stopped by Ctrl-C (a run it had open ends KILLED)",
              file=sys.stderr)
        sys.exit(130)  # 128 + SIGINT


def _skip_final_collection() -> None:
    """Collect once, then freeze what is left: the interpreter's shutdown then skips
    collecting torch's, Lightning's and MLflow's ~600k objects one cycle at a time (2 s of
    every `pvf` command on 2 cores, measured; 0.3 s this way). What is still alive at exit is
    freed by the operating system, as in the warm worker's children since their fork."""
    import gc

    gc.collect()  # any garbage left in a cycle still gets its finalizer
    gc.freeze()


# -- the key and the worker's files ------------------------------------------------------------


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
    import tempfile

    folder = Path(tempfile.gettempdir()) / f"pvf-warm-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    stat = folder.stat()
    if stat.st_uid != os.getuid() or stat.st_mode & 0o077:
        raise OSError(f"{folder} is not private to this user")
    return folder


def _connect(key: str) -> socket.socket | None:
    """A connection to the worker with this key, starting one if there is none; None when a
    worker for it cannot start (its imports failed: see its log)."""
    folder = worker_dir()
    address, failed = folder / f"{key}.sock", folder / f"{key}.failed"
    if failed.exists():
        return None
    lock, deadline, worker = folder / f"{key}.lock", time.monotonic() + STARTUP_TIMEOUT_S, None
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(str(address))
            return conn
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()
        if failed.exists() or time.monotonic() > deadline:
            return None
        if not _lock_held(lock):  # no worker is starting or serving
            if worker is not None and worker.poll() is not None:
                return None  # ours started and ended without serving (its log says why)
            if worker is None:
                worker = _start_worker(key, folder)
        time.sleep(0.05)


def _lock_held(path: Path) -> bool:
    import fcntl

    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _start_worker(key: str, folder: Path):
    """The worker, in a session of its own (a terminal's Ctrl-C is the command's to forward),
    with this command's environment and import path."""
    import subprocess

    with open(folder / f"{key}.log", "w") as log:
        flags = subprocess._args_from_interpreter_flags()  # -W, -X, -O ... as this Python's
        return subprocess.Popen(
            [sys.executable, *flags, "-m", "prompt_vs_finetune.warm_worker", key,
             json.dumps(sys.path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/", start_new_session=True,
            close_fds=True)


# -- the command's side ------------------------------------------------------------------------


def _hand_over(conn: socket.socket, entry: str):
    """Give the worker this command; (a reader of its messages, the child's pid). OSError
    when the worker took nothing (the command may then run here)."""
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    streams = [fd for fd in (0, 1, 2) if _is_open(fd)]
    request = {"entry": entry, "argv": sys.argv, "path": sys.path, "cwd": os.getcwd(),
               "env": dict(os.environ), "umask": _umask(), "streams": streams,
               "main_module": spec.name if spec else None,
               "sigint_ignored": signal.getsignal(signal.SIGINT) is signal.SIG_IGN}
    body = json.dumps(request).encode()
    socket.send_fds(conn, [struct.pack("!I", len(body))], streams)
    conn.sendall(body)
    reader = conn.makefile("rb")
    line = reader.readline()
    if not line.endswith(b"\n"):
        raise OSError("the worker closed the connection")
    return reader, json.loads(line)["pid"]


def _wait_for(reader, child: int) -> int:
    """Forward signals to the child until it ends; its wait status."""
    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

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
    return json.loads(line)["status"]


def _exit_like(status: int) -> None:
    """End this command as the child ended: its exit code, or the signal that killed it."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False
