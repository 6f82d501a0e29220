"""What a fine-tuning job's resume state does after a failure, in-process on `tiny` (the
signals themselves, sent to real subprocesses, are in test_resume.py): a failure keeps it and
the same command continues; changed data or code starts afresh; an attempt that cannot
continue is one line that leaves it in place; one live job per key; no run left RUNNING."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from mlflow.entities import ViewType
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.tracking import MlflowClient

from prompt_vs_finetune import job
from prompt_vs_finetune.cli import disk_full
from prompt_vs_finetune.errors import Preempted, UserError
from prompt_vs_finetune.tracking.runs import sigterm_as_preemption
from prompt_vs_finetune.train import resume
from prompt_vs_finetune.train.module import ArmModule

from .conftest import INTENT_TRAIN, compose_config

FIT = ("task=intent_sample", "model=tiny", "model.tiny.n_layer=1", "arm=full_finetune",
       "model.max_epochs=1", "test_size=8", "resume_every_n_steps=5",
       "callbacks.early_stopping.patience=100")
FAIL_AT = 7  # the step the first attempt fails at, after its checkpoint at step 5


def fit(tmp_path, *extra):
    """The job on its own copy of the train file (so a test can change the data)."""
    train = tmp_path / "train.jsonl"
    if not train.exists():
        shutil.copy(INTENT_TRAIN, train)
    test = INTENT_TRAIN.with_name("test.jsonl")
    return job.run(compose_config(tmp_path, *FIT, f"task.data_files={{train: {train}, "
                                  f"test: {test}}}", *extra))


def runs(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    found = client.search_runs([e.experiment_id for e in client.search_experiments()],
                               run_view_type=ViewType.ALL,
                               order_by=["attributes.start_time ASC"])
    return client, found


def state_folder(tmp_path):
    (folder,) = (tmp_path / "resume").iterdir()
    return folder


@pytest.fixture
def failed(tmp_path, monkeypatch):
    """A job that failed at step 7: its run FAILED, its resume state (checkpoint at step 5)
    kept for the same command."""
    original = ArmModule.training_step

    def failing(self, batch, batch_idx):
        if self.global_step == FAIL_AT:
            raise RuntimeError(f"boom at step {FAIL_AT}")
        return original(self, batch, batch_idx)

    with monkeypatch.context() as patch:
        patch.setattr(ArmModule, "training_step", failing)
        with pytest.raises(RuntimeError, match="boom"):
            fit(tmp_path)
    _, (run,) = runs(tmp_path)
    assert run.info.status == "FAILED" and "boom" in run.data.tags["error"]
    folder = state_folder(tmp_path)
    assert (folder / "last.ckpt").is_file() and not (folder / "lock").exists()
    return run


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The same job, uninterrupted."""
    return fit(tmp_path_factory.mktemp("straight"))


def test_a_failure_keeps_the_state_and_the_same_command_finishes_the_run(tmp_path, failed,
                                                                         straight):
    results = fit(tmp_path)
    client, (run,) = runs(tmp_path)
    assert run.info.run_id == failed.info.run_id and run.info.status == "FINISHED"
    assert run.data.tags["resumed"] == "1" and "error" not in run.data.tags
    assert "boom" in run.data.tags["resumed_after"]
    for key in ("test/accuracy", "test/perplexity", "val/best_loss"):
        assert results[key] == pytest.approx(straight[key], rel=1e-6), key
    assert not (tmp_path / "resume").exists() or not list((tmp_path / "resume").iterdir())


def test_changed_data_starts_afresh_and_says_so(tmp_path, failed, caplog):
    train = tmp_path / "train.jsonl"
    train.write_text(train.read_text() + '{"text": "please close my account today", '
                     '"category": "terminate_account"}\n')
    fit(tmp_path)
    assert "the data changed since the interrupted attempt" in caplog.text
    client, (old, new) = runs(tmp_path)
    assert new.info.status == "FINISHED" and "resumed" not in new.data.tags
    assert new.data.params["data.train_sha256"] != old.data.params["data.train_sha256"]


def test_changed_code_starts_afresh(tmp_path, failed, monkeypatch, caplog):
    monkeypatch.setattr(resume, "code_version", lambda: "another-version")
    fit(tmp_path)
    assert "the code changed since the interrupted attempt" in caplog.text
    _, found = runs(tmp_path)
    assert [r.info.status for r in found] == ["FAILED", "FINISHED"]


def damage_checkpoint(tmp_path, run):
    path = state_folder(tmp_path) / "last.ckpt"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 64] = os.urandom(64)
    path.write_bytes(raw)


def delete_run(tmp_path, run):
    MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").delete_run(run.info.run_id)


def other_store(tmp_path, run):
    meta = state_folder(tmp_path) / "job.json"
    meta.write_text(json.dumps(json.loads(meta.read_text()) | {"run_id": "0" * 32}))


@pytest.mark.parametrize(("damage", "message"), [
    (damage_checkpoint, r"the resume checkpoint .*last.ckpt is damaged"),
    (delete_run, r"the interrupted attempt's run \w+ was deleted from .*; restore it"),
    (other_store, r"the interrupted attempt's run 0+ is not in the tracking store"),
])
def test_an_attempt_that_cannot_continue_is_one_line_and_keeps_the_state(tmp_path, failed,
                                                                         damage, message):
    client, _ = runs(tmp_path)
    client.update_run(failed.info.run_id, status="RUNNING")  # what a SIGKILL leaves
    damage(tmp_path, failed)
    with pytest.raises(UserError, match=message) as raised:
        fit(tmp_path)
    assert "\n" not in str(raised.value) and "resume=false" in str(raised.value)
    folder = state_folder(tmp_path)
    assert (folder / "last.ckpt").is_file() and not (folder / "lock").exists()
    _, found = runs(tmp_path)
    assert len(found) == 1  # no run opened (a deleted one included)
    if damage is damage_checkpoint:  # it cannot continue: its run is not left RUNNING
        assert found[0].info.status == "FAILED" and "damaged" in found[0].data.tags["error"]


def test_resume_false_over_an_orphan_ends_it_failed(tmp_path, failed):
    """What a SIGKILL leaves (a RUNNING run and its checkpoint), then resume=false."""
    client, _ = runs(tmp_path)
    client.update_run(failed.info.run_id, status="RUNNING")
    fit(tmp_path, "resume=false")
    _, (old, new) = runs(tmp_path)
    assert old.info.status == "FAILED"
    assert old.data.tags["error"] == "abandoned: resume=false started this job afresh"
    assert new.info.status == "FINISHED"
    assert not list((tmp_path / "resume").glob("*/last.ckpt"))


def test_one_live_job_per_key_and_a_dead_owners_lock_is_taken_over(tmp_path, failed):
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    lock = state_folder(tmp_path) / "lock"
    try:
        lock.write_text(json.dumps({"pid": owner.pid, "host": os.uname().nodename,
                                    "since": "now"}))
        with pytest.raises(UserError, match=rf"the same job is already running \(pid "
                                            rf"{owner.pid}, .*kill {owner.pid}"):
            fit(tmp_path)
        assert lock.is_file()  # still the live owner's
    finally:
        owner.kill()
        owner.wait()
    fit(tmp_path)  # the owner is gone: its lock is taken over, the job resumes
    _, (run,) = runs(tmp_path)
    assert run.info.status == "FINISHED" and run.data.tags["resumed"] == "1"


def optimizer_state_files(folder) -> list[str]:
    """Files under `folder` holding an optimizer's state (Lightning's key, AdamW's moments)."""
    return [str(path) for path in folder.rglob("*") if path.is_file()
            and any(key in path.read_bytes() for key in (b"optimizer_states", b"exp_avg"))]


@pytest.mark.parametrize("arm", [("arm=full_finetune",),  # a best chosen on validation
                                 ("arm=lora", "arm.min_validation=1000")])  # a fixed schedule
def test_a_finished_fit_leaves_no_optimizer_state_on_disk(tmp_path, monkeypatch, arm):
    """Mid-fit the resume state holds the optimizer's moments; once the fit ends (as the
    test starts, the resume state kept for a kill while testing) and after the job, no file
    in the job's folders does."""
    seen = {}
    step, test_start = ArmModule.training_step, ArmModule.on_test_start

    def training_step(self, batch, batch_idx):
        if self.global_step == FAIL_AT:  # after the checkpoint at step 5
            seen["mid-fit"] = optimizer_state_files(tmp_path)
        return step(self, batch, batch_idx)

    def on_test_start(self):
        seen.setdefault("fitted", optimizer_state_files(tmp_path))
        seen.setdefault("resume", [p.name for p in state_folder(tmp_path).iterdir()])
        return test_start(self)

    monkeypatch.setattr(ArmModule, "training_step", training_step)
    monkeypatch.setattr(ArmModule, "on_test_start", on_test_start)
    fit(tmp_path, *arm)
    assert seen["mid-fit"] and "last.ckpt" in seen["resume"]
    assert seen["fitted"] == [] and optimizer_state_files(tmp_path) == []


def test_a_stop_asked_before_min_steps_saves_the_resume_state_once(tmp_path, monkeypatch):
    """Early stopping that fires before arm.min_steps does not end the fit, so the epochs
    after it are not each the fit's last: the resume state is saved once, at the end."""
    saves = []
    original = resume.write_state

    def counting(trainer, checkpoint, path):
        saves.append(os.path.basename(path))
        return original(trainer, checkpoint, path)

    monkeypatch.setattr(resume, "write_state", counting)
    fit(tmp_path, "train_size=16", "arm.min_steps=6", "resume_every_n_steps=1000",
        "+callbacks.early_stopping.stopping_threshold=1e9")  # asks to stop at the first check
    client, (run,) = runs(tmp_path)
    assert len(client.get_metric_history(run.info.run_id, "val/loss")) >= 3  # trained on
    assert saves.count("last.ckpt.tmp") == 1


def test_a_full_disk_mid_fit_fails_the_run_keeps_the_state_and_is_one_line(tmp_path,
                                                                          monkeypatch):
    saves = []
    original = resume.write_state

    def full_after_the_first(trainer, checkpoint, path):
        saves.append(path)
        if len(saves) > 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return original(trainer, checkpoint, path)

    with monkeypatch.context() as patch:
        patch.setattr(resume, "write_state", full_after_the_first)
        with pytest.raises(OSError) as raised:
            fit(tmp_path)
    line = disk_full(raised.value)
    assert line.startswith("the disk is full (writing ") and "\n" not in line
    _, (run,) = runs(tmp_path)
    assert run.info.status == "FAILED" and "No space left" in run.data.tags["error"]
    fit(tmp_path)  # space freed: the same command continues from the first checkpoint
    _, (run,) = runs(tmp_path)
    assert run.info.status == "FINISHED" and run.data.tags["resumed"] == "1"


def test_a_full_tracking_store_is_one_line_and_the_run_is_ended_when_next_used(
        tmp_path, monkeypatch, caplog):
    """The store's disk fills up mid-fit: the run cannot even be marked FAILED; one line
    says so, and the next job with the key ends it FAILED before starting afresh."""
    original = ArmModule.training_step
    full = []

    def filling(self, batch, batch_idx):
        if self.global_step == 3:
            full.append(True)
        return original(self, batch, batch_idx)

    def write(name):
        def guarded(*args, **kwargs):
            if full:
                raise Exception("(sqlite3.OperationalError) database or disk is full")
            return getattr(SqlAlchemyStore, f"_pvf_{name}")(*args, **kwargs)
        return guarded

    with monkeypatch.context() as patch:
        patch.setattr(ArmModule, "training_step", filling)
        for name in ("log_batch", "set_tag", "update_run_info"):
            patch.setattr(SqlAlchemyStore, f"_pvf_{name}", getattr(SqlAlchemyStore, name),
                          raising=False)
            patch.setattr(SqlAlchemyStore, name, write(name))
        with pytest.raises(Exception) as raised:
            fit(tmp_path, "resume_every_n_steps=1000")  # full before the first checkpoint
    assert disk_full(raised.value).startswith("the disk is full")
    assert "could not mark run" in caplog.text and "Traceback" not in caplog.text
    _, (run,) = runs(tmp_path)
    assert run.info.status == "RUNNING"  # the store could not take its end
    fit(tmp_path)  # the key is used again: the orphan is ended FAILED, a new run starts
    _, (old, new) = runs(tmp_path)
    assert old.info.status == "FAILED"
    assert old.data.tags["error"] == ("abandoned: interrupted before its first resume "
                                      "checkpoint")
    assert new.info.status == "FINISHED"


def test_sigterm_outside_lightning_is_a_preemption():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Preempted), sigterm_as_preemption():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_sigterm_ends_with_its_job():
    """A SIGTERM a job saw does not preempt the next job of the same process (a hybrid's
    teacher labels the pool before its own job's SIGTERM handling starts): the suite crashed
    on it when an in-process job followed test_tracking's SIGTERM test."""
    from prompt_vs_finetune.tracking.runs import raise_if_preempted

    with pytest.raises(Preempted), sigterm_as_preemption():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    raise_if_preempted()  # nothing left over: no Preempted here
