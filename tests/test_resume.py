"""Kill a fine-tuning job (SIGKILL mid-epoch, after a validation, while testing; SIGTERM);
the same command resumes it into the same MLflow run and ends with the metrics of an
uninterrupted run."""

import json
import signal
import subprocess
import sys
import time

import pytest

from .test_cli import job_env, runs_in

ARGS = ("task=intent_sample", "model=tiny", "model.tiny.n_layer=1", "arm=full_finetune",
        "model.max_epochs=2", "callbacks.early_stopping.patience=100", "test_size=16",
        "resume_every_n_steps=5", "results_file=r.json")


def start(cwd, *extra: str, warm: bool = False):
    """The job in the background; its output goes to cwd/log.txt (a pipe could fill up). A
    new process (the jobs that are killed, and those that resume them), or with `warm` one
    forked from the suite's warm worker (a job that runs through: the same results, test_warm)."""
    with open(cwd / "log.txt", "a") as log:
        # SIGINT at its default: a suite started in the background by a non-interactive shell
        # ignores SIGINT, and the job would inherit that (Ctrl-C tests then see exit 0)
        replaced = {e.split("=")[0] for e in extra}  # a key given twice is refused
        args = [*(a for a in ARGS if a.split("=")[0] not in replaced), *extra]
        return subprocess.Popen([sys.executable, "-m", "prompt_vs_finetune", *args],
                                cwd=cwd, env=job_env(PVF_WARM="1" if warm else "0"), stdout=log,
                                stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def log_of(cwd) -> str:
    return (cwd / "log.txt").read_text()


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted job: (its folder, its results file)."""
    cwd = tmp_path_factory.mktemp("straight")
    job = start(cwd, warm=True)
    assert job.wait(timeout=600) == 0, log_of(cwd)[-3000:]
    assert not list((cwd / "outputs/.resume").glob("*"))  # a job that ends leaves none
    return cwd, json.loads((cwd / "r.json").read_text())


def kill_at_checkpoint(cwd, nth: int, *extra: str, how=signal.SIGKILL) -> int:
    """Start the job, and kill it once its `nth` resume checkpoint is on disk; its exit code."""
    job = start(cwd, *extra)
    deadline, seen = time.time() + 300, set()
    while time.time() < deadline and len(seen) < nth:
        for ckpt in (cwd / "outputs/.resume").glob("*/last.ckpt"):
            seen.add(ckpt.stat().st_mtime_ns)
        time.sleep(0.05)
    job.send_signal(how)
    code = job.wait(timeout=120)
    assert len(seen) >= nth and not (cwd / "r.json").exists()
    return code


def assert_resumed_like(cwd, straight, *extra: str, times: int = 1):
    """The same command again: it resumes into the one run, which ends FINISHED with the
    uninterrupted run's metrics and loss curve (no step twice)."""
    job = start(cwd, *extra)
    assert job.wait(timeout=600) == 0, log_of(cwd)[-3000:]
    assert "resuming" in log_of(cwd)
    resumed = json.loads((cwd / "r.json").read_text())
    client, runs = runs_in(cwd)
    assert len(runs) == 1 and runs[0].info.run_id == resumed["run_id"]
    assert runs[0].info.status == "FINISHED" and runs[0].data.tags["resumed"] == str(times)
    expected_dir, expected = straight
    for key in ("test/accuracy", "test/perplexity", "val/best_loss"):
        assert resumed[key] == expected[key], key
    losses = {m.step: m.value for m in client.get_metric_history(runs[0].info.run_id,
                                                                 "train/loss")}
    client, runs = runs_in(expected_dir)
    assert losses == {m.step: m.value for m in client.get_metric_history(runs[0].info.run_id,
                                                                         "train/loss")}
    assert not list((cwd / "outputs/.resume").glob("*"))  # FINISHED: the state is gone


def test_sigkill_mid_epoch_then_same_command_resumes(tmp_path, straight):
    kill_at_checkpoint(tmp_path, 3)  # the 3rd checkpoint: step 15, epoch 0
    _, runs = runs_in(tmp_path)
    assert [r.info.status for r in runs] == ["RUNNING"]  # what a SIGKILL leaves behind
    assert_resumed_like(tmp_path, straight)


def test_sigkill_right_after_validation_then_while_testing_resumes(tmp_path, straight):
    """An epoch is 16 steps (252 train examples in batches of 16): the save due at its last
    batch is written after the epoch's validation, and one more ends the fit. Killed after the
    first (epoch 0; resuming from it used to stop on a missing val/loss and delete it),
    resumed, and killed again once the resumed job writes the last of the fit, so the kill
    lands as it tests: the third attempt finishes the one run."""
    kill_at_checkpoint(tmp_path, 1, "resume_every_n_steps=16")
    kill_at_checkpoint(tmp_path, 2, "resume_every_n_steps=16")  # the 1st is the old one
    assert "resuming" in log_of(tmp_path)
    assert_resumed_like(tmp_path, straight, "resume_every_n_steps=16", times=2)


def test_sigterm_checkpoints_exits_143_and_the_same_command_resumes(tmp_path, straight):
    """SIGTERM, what a scheduler preempting the job sends: a checkpoint at the batch it
    arrived in, the run KILLED, the state kept, one line, 128 + 15."""
    assert kill_at_checkpoint(tmp_path, 2, how=signal.SIGTERM) == 143
    assert ("error: stopped by SIGTERM (preempted); the same command resumes this job"
            in log_of(tmp_path))
    assert "Traceback" not in log_of(tmp_path)
    _, runs = runs_in(tmp_path)
    assert [r.info.status for r in runs] == ["KILLED"]
    assert runs[0].data.tags["stopped"].startswith("SIGTERM")
    assert list((tmp_path / "outputs/.resume").glob("*/last.ckpt"))
    assert_resumed_like(tmp_path, straight)
    _, runs = runs_in(tmp_path)
    assert "stopped" not in runs[0].data.tags and runs[0].data.tags["resumed_after"]


def test_ctrl_c_ends_the_run_killed(tmp_path):
    # 50 epochs: room for the Ctrl-C to land while fitting (the job stops at the first
    # checkpoint, so this costs nothing when SIGINT is delivered)
    job = start(tmp_path, "model.max_epochs=50")
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "outputs/.resume").glob("*/last.ckpt")):
        time.sleep(0.05)  # fitting has begun
    job.send_signal(signal.SIGINT)
    assert job.wait(timeout=120) != 0
    _, runs = runs_in(tmp_path)
    assert [r.info.status for r in runs] == ["KILLED"], log_of(tmp_path)[-2000:]
    assert not list((tmp_path / "outputs/.resume").glob("*"))  # stopped on purpose: no resume
