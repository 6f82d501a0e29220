"""Sweeps at scale: parallel jobs share the default sqlite store without losing runs, and a
sweep is one parent run per experiment with its jobs nested under it."""

import json

import pytest
from omegaconf import OmegaConf

from .conftest import compose_config
from .test_cli import pvf, runs_in


def test_joblib_multirun_in_parallel_loses_no_run(tmp_path):
    """8 jobs on 4 joblib workers, all creating the same fresh sqlite store at once (the race
    that corrupts a new MLflow database without the store lock)."""
    result = pvf(tmp_path, "-m", "hydra/launcher=local", "hydra.launcher.n_jobs=4",
                 "task=intent_sample", "model=tiny", "model.tiny.n_layer=1",
                 "arm=zero_shot,few_shot", "arm.k=1", "seed=0,1,2,3", "test_size=8")
    assert result.returncode == 0, result.stderr[-3000:]
    client, runs = runs_in(tmp_path, parents=True)
    parents = [r for r in runs if r.data.tags.get("pvf.parent") == "true"]
    runs = [r for r in runs if r not in parents]
    assert sorted((r.data.tags["arm"], r.data.tags["seed"]) for r in runs) == sorted(
        (arm, str(seed)) for arm in ("few_shot", "zero_shot") for seed in range(4))
    assert {r.info.status for r in runs} == {"FINISHED"}
    keys = {frozenset(r.data.metrics) for r in runs}
    assert len(keys) == 1 and "test/accuracy" in next(iter(keys))  # no metric went missing
    assert len({len(r.data.params) for r in runs}) == 1
    # four workers raced to create the sweep's parent: there is one, and every job is under it
    [parent] = parents
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert parent.info.run_name.startswith("sweep ") and parent.info.run_name.endswith(
        ": arm=zero_shot,few_shot seed=0,1,2,3")
    assert parent.data.metrics["sweep/jobs_finished"] == 8
    assert parent.data.metrics["sweep/jobs_failed"] == 0
    assert len({r.info.run_name for r in runs}) == 8  # names tell the jobs apart


def test_launcher_and_sweeper_configs_compose(tmp_path):
    cfg = compose_config(tmp_path, "hydra/launcher=slurm", "arm=lora", return_hydra=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    cfg = compose_config(tmp_path, "hydra/sweeper=lora_optuna", "arm=lora", return_hydra=True)
    sweeper = OmegaConf.to_container(cfg.hydra.sweeper, resolve=False)
    assert sweeper["direction"] == "minimize" and "arm.lora.r" in sweeper["params"]
    assert cfg.objective == "val/best_loss"


FAULT = ("+callbacks.fault._target_=tests.faulty.FailingCallback",  # raises inside the run
         "cache_predictions=false")  # or the second zero-shot job reuses the first one's


def test_a_failed_job_does_not_stop_a_sweep_that_submitit_runs(tmp_path):
    """The second of two jobs fails inside its run: it ends FAILED with the error as a tag and
    the traceback as an artifact, the other finishes, and the sweep prints a summary and
    exits 1. The sweep runs on hydra/launcher=submitit_local: the SLURM launcher's machinery
    (each job pickled, started in a process of its own, its result collected) without a
    cluster."""
    result = pvf(tmp_path, "-m", "hydra/launcher=submitit_local", "task=intent_sample",
                 "model=tiny", "model.tiny.n_layer=1", "arm=zero_shot", "test_size=8", *FAULT,
                 "+callbacks.fault.fail=false,true", "+notes.api_token=sk-secret")
    assert result.returncode == 1, result.stderr[-3000:]
    # a failure here prints the jobs' table (its error column) and each job's submitit log
    assert "1 finished, 1 failed" in result.stderr, result.stderr[-3000:] + submitit_logs(tmp_path)
    assert "+callbacks.fault.fail=True" in result.stderr
    client, runs = runs_in(tmp_path, parents=True)
    [parent] = [r for r in runs if r.data.tags.get("pvf.parent") == "true"]
    runs = [r for r in runs if r is not parent]
    by_fault = {r.data.params["callbacks.fault.fail"]: r for r in runs}
    assert {f: r.info.status for f, r in by_fault.items()} == {
        "False": "FINISHED", "True": "FAILED"}
    failed = by_fault["True"]
    assert "injected fault" in failed.data.tags["error"]
    trace = client.download_artifacts(failed.info.run_id, "traceback.txt", str(tmp_path))
    assert "Traceback" in open(trace).read()
    # each job's overrides as one redacted tag; the sweep's summary in its parent
    assert failed.data.tags["overrides"] == (
        "task=intent_sample model=tiny model.tiny.n_layer=1 arm=zero_shot test_size=8 "
        "+callbacks.fault._target_=tests.faulty.FailingCallback cache_predictions=False "
        "+callbacks.fault.fail=True +notes.api_token=***")
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert (parent.data.metrics["sweep/jobs_finished"],
            parent.data.metrics["sweep/jobs_failed"]) == (1, 1)
    assert "+callbacks.fault.fail=True" in parent.data.tags["failed_overrides"]
    assert parent.info.status == "FINISHED"
    jobs = json.load(open(client.download_artifacts(parent.info.run_id, "sweep.json",
                                                    str(tmp_path))))["jobs"]
    assert sorted(j["status"] for j in jobs) == ["failed", "finished"]
    assert {j["run_id"] for j in jobs} == {r.info.run_id for r in runs}
    # submitit's own records: one folder per job, with its pickled result and logs
    [sweep] = list((tmp_path / "multirun").iterdir())
    folders = [p for p in (sweep / ".submitit").iterdir() if p.name != "%j"]
    assert len(folders) == 2 and all(list(f.glob("*_result.pkl")) for f in folders)


def submitit_logs(tmp_path) -> str:
    """The tail of every submitit job's stdout and stderr, to say why a job failed."""
    logs = sorted((tmp_path / "multirun").glob("*/.submitit/*/*_log.*"))
    return "".join(f"\n--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in logs)


FLAKY_OPTUNA = """defaults:
  - _optuna
direction: minimize
n_trials: 4
n_jobs: 1
sampler:
  seed: 0
params:
  arm.lr: choice(0.001, 1000000.0)
  +callbacks.fault.fail: choice(false, true)
"""


def test_an_optuna_study_goes_past_failed_and_diverged_trials(tmp_path):
    """Trials that diverge (lr=1e6: a NaN loss) or fail (a bogus precision) are recorded as
    failed and the study goes on to its last trial; the parent run gets the summary."""
    extra = tmp_path / "extra" / "hydra" / "sweeper"
    extra.mkdir(parents=True)
    (extra / "flaky_optuna.yaml").write_text(FLAKY_OPTUNA)
    result = pvf(tmp_path, "-m", "hydra/sweeper=flaky_optuna",
                 f"hydra.searchpath=[file://{tmp_path / 'extra'}]", "task=intent_sample",
                 "model=tiny", "model.tiny.n_layer=1", "arm=lora", "test_size=8",
                 "model.max_epochs=1", *FAULT)
    assert result.returncode == 1, result.stderr[-3000:]  # some jobs failed: exit 1
    assert "1 finished, 3 failed" in result.stderr
    assert (tmp_path / "multirun").exists()
    [results] = list((tmp_path / "multirun").glob("*/optimization_results.yaml"))
    assert OmegaConf.load(results).best_params == {"arm.lr": 0.001,
                                                   "+callbacks.fault.fail": False}
    client, runs = runs_in(tmp_path, parents=True)
    [parent] = [r for r in runs if r.data.tags.get("pvf.parent") == "true"]
    assert parent.data.metrics["sweep/jobs_failed"] == 3
    assert sorted(r.info.status for r in runs if r is not parent) == [
        "FAILED", "FAILED", "FAILED", "FINISHED"]


def test_an_optuna_study_of_no_trial_is_one_line(tmp_path):
    result = pvf(tmp_path, "-m", "hydra/sweeper=lora_optuna", "hydra.sweeper.n_trials=0",
                 "task=intent_sample", "model=tiny", "arm=lora", timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: hydra.sweeper.n_trials=0 runs no trial; give 1 "
                                     "or more (each trial is one job)")


def test_an_optuna_study_whose_every_trial_failed_ends_like_any_failed_sweep(caplog):
    """Optuna's sweeper ends a study in which no trial completed with "No trials are
    completed yet" and a traceback, before the summary (on_multirun_end) and the exit code;
    pvf's returns, so Hydra goes on to them. Any other error still propagates."""
    from hydra_plugins.pvf_optuna import OptunaSweeper

    class Inner:
        def __init__(self, error):
            self.error = error

        def sweep(self, arguments):
            raise self.error

    sweeper = OptunaSweeper.__new__(OptunaSweeper)  # its Optuna part stood in for
    sweeper.optuna = Inner(ValueError("No trials are completed yet."))
    assert sweeper.sweep([]) is None
    assert "every trial failed, so the study has no best parameters" in caplog.text
    sweeper.optuna = Inner(ValueError("something else"))
    with pytest.raises(ValueError, match="something else"):
        sweeper.sweep([])
