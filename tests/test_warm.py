"""Warm start (warm/): a job forked from a warm worker logs what a new process logs, and the
command ends as its job ends (exit code, SIGTERM's preemption, SIGKILL)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.entities import RunStatus

from prompt_vs_finetune import warm

from .test_cli import job_env, runs_in

FIT = ("task=intent_sample", "model=tiny", "arm=full_finetune", "train_size=64",
       "model.max_epochs=2", "seed=0")


PROJECTS: list[Path] = []  # the module's working folder (forked_jobs counts its jobs only)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """One working folder for the module's commands: they share one worker (its key)."""
    PROJECTS.append(tmp_path_factory.mktemp("warm"))
    return PROJECTS[-1]


def command(cwd: Path, *args: str, warm_on: bool = True) -> subprocess.Popen:
    """The command in the background; its output goes to a file (a pipe could fill up)."""
    env = job_env(PVF_WARM="1" if warm_on else "0")
    env.pop("PYTEST_CURRENT_TEST", None)  # one per test: the module's tests share a worker
    output = cwd / f"command-{time.monotonic_ns()}.txt"
    with open(output, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "prompt_vs_finetune", *args],
                                   cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    process.output = output
    return process


def finished(process: subprocess.Popen) -> tuple[int, str]:
    process.wait(timeout=300)
    return process.returncode, process.output.read_text()


def the_run(cwd: Path, run_dir: str):
    _, runs = runs_in(cwd)
    found = [r for r in runs if r.data.params.get("paths.output_dir", "").endswith(run_dir)]
    return found[0] if found else None


def test_a_warm_job_logs_what_a_new_process_logs(project):
    """Same metrics and params (less the output folder) as the same job in a new process;
    the fit (torch's thread pool in a forked child) ran; the run says it started warm."""
    for mode in ("cold", "warm"):
        code, output = finished(command(project, *FIT, f"hydra.run.dir=out/{mode}",
                                        warm_on=mode == "warm"))
        assert code == 0, output[-3000:]
        assert "test/accuracy=" in output  # the job's own log line, on the command's stream
    cold, warm_run = the_run(project, "out/cold"), the_run(project, "out/warm")

    def outcome(run):
        return {k: v for k, v in run.data.metrics.items()
                if not k.startswith(("cost/", "system/"))}

    assert outcome(warm_run) == outcome(cold)
    assert {"val/loss", "test/accuracy"} <= set(outcome(cold))  # it trained, then scored
    where = ("paths.output_dir", "callbacks.model_checkpoint.dirpath")
    assert {k: v for k, v in warm_run.data.params.items() if k not in where} == \
           {k: v for k, v in cold.data.params.items() if k not in where}
    assert warm_run.data.tags["warm_start"] == "true" and "warm_start" not in cold.data.tags
    assert warm_run.data.tags["config_source"] == cold.data.tags["config_source"]


def test_a_bad_command_is_its_one_line_and_exit_code(project):
    code, output = finished(command(project, "task=intent_sample", "modle=tiny"))
    assert code == 2 and "unknown config key 'modle'" in output
    assert "Traceback" not in output


def forked_jobs() -> set[int]:
    """The pids of jobs that workers forked (a child shares its worker's command line) in
    this module's working folder: not the jobs that the suite's other tests (the other xdist
    worker) or other users fork meanwhile."""
    warm_processes, cwds = {}, {}
    for entry in Path("/proc").iterdir():
        try:
            line = (entry / "cmdline").read_bytes()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
        if b"prompt_vs_finetune.warm" in line:
            warm_processes[int(entry.name)] = parent
            try:
                cwds[int(entry.name)] = os.readlink(entry / "cwd")
            except OSError:
                cwds[int(entry.name)] = ""
    return {pid for pid, parent in warm_processes.items() if parent in warm_processes
            and any(cwds[pid].startswith(str(folder)) for folder in PROJECTS)}


def running(cwd: Path, run_dir: str, process: subprocess.Popen):
    for _ in range(600):
        run = the_run(cwd, run_dir)
        if run is not None and run.info.status == "RUNNING":
            return run
        assert process.poll() is None, process.output.read_text()[-3000:]
        time.sleep(0.1)
    raise AssertionError("the job never started its run")


def test_sigterm_is_forwarded_and_sigkill_takes_the_job_with_it(project):
    """SIGTERM reaches the job: a preemption (run KILLED, exit 143). SIGKILL cannot be
    forwarded: the job notices its command is gone and ends too."""
    long_fit = (*FIT[:-2], "model.max_epochs=50", FIT[-1])  # seed last (another job: seed=1)
    process = command(project, *long_fit, "hydra.run.dir=out/term")
    running(project, "out/term", process)
    process.send_signal(signal.SIGTERM)
    code, output = finished(process)
    assert code == 143 and "stopped by SIGTERM (preempted)" in output
    run = the_run(project, "out/term")
    assert run.info.status == RunStatus.to_string(RunStatus.KILLED) and run.data.tags["stopped"]

    before = forked_jobs()
    process = command(project, *long_fit[:-1], "seed=1", "hydra.run.dir=out/kill")
    running(project, "out/kill", process)
    job = forked_jobs() - before
    assert len(job) == 1
    process.kill()
    process.wait()
    for _ in range(100):
        if not job & forked_jobs():
            break
        time.sleep(0.1)
    assert not job & forked_jobs()


def test_the_key_follows_sources_environment_and_packages(tmp_path, monkeypatch):
    """The sources count by content, through the code version resume and the caches use."""
    from prompt_vs_finetune.tracking import provenance

    package = tmp_path / "pkg"
    package.mkdir()
    (package / "warm.py").write_text("")
    (package / "job.py").write_text("")
    monkeypatch.setattr(provenance, "PACKAGE", package)
    provenance.code_version.cache_clear()
    key = warm.worker_key()
    monkeypatch.setenv("DVC_STAGE", "run@intent_sample-lora-1")  # one per stage of a study
    monkeypatch.setenv("PVF_WARM", "1")
    assert warm.worker_key() == key
    os.utime(package / "job.py", ns=(1, 1))  # touched, not changed
    assert warm.worker_key() == key
    (package / "job.py").write_text("x = 1\n")  # an edited source file
    provenance.code_version.cache_clear()  # (a command is a new process: read once)
    edited = warm.worker_key()
    assert edited != key
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # read once, when huggingface_hub is imported
    assert warm.worker_key() != edited
    monkeypatch.setattr(sys, "path", [*sys.path, str(tmp_path / "site-packages")])
    assert warm.worker_key() != edited
    monkeypatch.undo()
    provenance.code_version.cache_clear()  # the real package's again, for the next test


@pytest.mark.parametrize(("env", "on"), [
    ({}, False), ({"DVC_ROOT": "/repo"}, True), ({"PVF_WARM": "1"}, True),
    ({"DVC_ROOT": "/repo", "PVF_WARM": "0"}, False),
])
def test_warm_under_dvc_or_when_asked(env, on, monkeypatch):
    for name in ("DVC_ROOT", "PVF_WARM"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert warm.enabled() is on


def test_a_worker_that_cannot_start_is_one_line_and_the_command_runs_here(monkeypatch, capsys):
    """Its imports failed once (the `.failed` file beside its socket): every command with its
    key says so in one line and runs in its own process, without starting another."""
    monkeypatch.setenv("PVF_WARM", "1")
    monkeypatch.setattr(warm, "worker_key", lambda: "test-failed-key")
    failed = warm.worker_dir() / "test-failed-key.failed"
    failed.write_text("ImportError: no module named torch\n")
    ran, started = [], []
    monkeypatch.setattr(warm, "_run_entry", ran.append)
    monkeypatch.setattr(warm, "_start_worker", lambda *args: started.append(args))
    try:
        warm.launch("pvf-report")
    finally:
        failed.unlink()
    assert ran == ["pvf-report"] and not started
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no warm worker" in err and "test-failed-key.log" in err


EXIT_PROBE = """
import gc, sys, types
from prompt_vs_finetune import warm

finalized, froze = sys.argv[1], sys.argv[2]
freeze = gc.freeze
gc.freeze = lambda: (open(froze, "w").write("frozen"), freeze())


class Node:
    def __del__(self):
        open(finalized, "w").write("finalized")


def entry():
    node = Node()
    node.self = node  # garbage in a cycle: only the collector finalizes it


sys.modules["probe"] = types.SimpleNamespace(entry=entry)
warm.ENTRIES["probe"] = ("probe", "entry")
warm._run_entry("probe")
"""


def test_a_command_freezes_what_is_left_at_exit_after_finalizing_its_garbage(tmp_path):
    """The shutdown skips collecting the libraries' objects (2 s a command), yet garbage the
    job left in a reference cycle is still finalized (a file flushed in its __del__)."""
    finalized, froze = tmp_path / "finalized", tmp_path / "froze"
    subprocess.run([sys.executable, "-c", EXIT_PROBE, str(finalized), str(froze)], check=True,
                   env=job_env(PVF_WARM="0"))
    assert froze.read_text() == "frozen"
    assert finalized.read_text() == "finalized"
