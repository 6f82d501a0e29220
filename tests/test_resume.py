"""Kill a fine-tuning job with SIGKILL mid-fit; the same command resumes it into the same
MLflow run and ends with the metrics of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

from .test_cli import runs_in

ARGS = ("task=intent_sample", "model=tiny", "model.tiny.n_layer=1", "arm=full_finetune",
        "model.max_epochs=2", "callbacks.early_stopping.patience=100", "test_size=40",
        "resume_every_n_steps=5", "results_file=r.json")


def start(cwd):
    """The job in the background; its output goes to cwd/log.txt (a pipe could fill up)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(cwd / "log.txt", "w") as log:
        return subprocess.Popen([sys.executable, "-m", "prompt_vs_finetune", *ARGS], cwd=cwd,
                                env=env, stdout=log, stderr=subprocess.STDOUT)


def log_of(cwd) -> str:
    return (cwd / "log.txt").read_text()


def test_sigkill_then_same_command_resumes_into_the_same_run(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight.mkdir(), killed.mkdir()
    job = start(straight)
    assert job.wait(timeout=600) == 0, log_of(straight)[-3000:]
    expected = json.loads((straight / "r.json").read_text())
    assert not list((straight / "outputs/.resume").glob("*"))  # a job that ends leaves none

    job = start(killed)
    deadline, seen = time.time() + 300, set()
    while time.time() < deadline and len(seen) < 3:  # the 3rd checkpoint: step 15, epoch 0
        for ckpt in (killed / "outputs/.resume").glob("*/last.ckpt"):
            seen.add(ckpt.stat().st_mtime_ns)
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait(timeout=60)
    assert len(seen) >= 3 and not (killed / "r.json").exists()
    _, runs = runs_in(killed)
    assert [r.info.status for r in runs] == ["RUNNING"]  # what a SIGKILL leaves behind

    job = start(killed)
    assert job.wait(timeout=600) == 0, log_of(killed)[-3000:]
    assert "resuming" in log_of(killed)
    resumed = json.loads((killed / "r.json").read_text())
    client, runs = runs_in(killed)
    assert len(runs) == 1 and runs[0].info.run_id == resumed["run_id"]
    assert runs[0].info.status == "FINISHED" and runs[0].data.tags["resumed"] == "1"
    for key in ("test/accuracy", "test/perplexity", "val/best_loss"):
        assert resumed[key] == expected[key], key
    # one loss curve, no step twice, the same values as the uninterrupted run's
    losses = {m.step: m.value for m in client.get_metric_history(runs[0].info.run_id,
                                                                 "train/loss")}
    client, runs = runs_in(straight)
    assert losses == {m.step: m.value for m in client.get_metric_history(runs[0].info.run_id,
                                                                         "train/loss")}


def test_ctrl_c_ends_the_run_killed(tmp_path):
    job = start(tmp_path)
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "outputs/.resume").glob("*/last.ckpt")):
        time.sleep(0.05)  # fitting has begun
    job.send_signal(signal.SIGINT)
    assert job.wait(timeout=120) != 0
    _, runs = runs_in(tmp_path)
    assert [r.info.status for r in runs] == ["KILLED"], log_of(tmp_path)[-2000:]
    assert not list((tmp_path / "outputs/.resume").glob("*"))  # stopped on purpose: no resume
