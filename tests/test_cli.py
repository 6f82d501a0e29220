"""`pvf` as users run it: real subprocesses, Hydra multirun, MLflow store on disk."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).parent.parent
ARMS = ("zero_shot", "few_shot", "full_finetune", "lora")
CHANCE = 1 / 14  # intent_sample has 14 balanced labels
REQUIRED_METRICS = (
    "test/accuracy", "test/macro_f1", "test/perplexity", "cost/train_seconds",
    "cost/eval_seconds", "cost/train_tokens", "cost/eval_tokens", "cost/flops",
    "cost/peak_memory_mb", "cost/trainable_params", "cost/usd", "cost/usd_per_1k_predictions",
    "cost/latency_ms_per_example",
)


def job_env(**extra: str) -> dict[str, str]:
    """The environment a `pvf` subprocess of the suite runs in: offline, its own store, and
    forked from a warm worker (as under DVC: 8-10 s of imports a job saved) unless `extra`
    says PVF_WARM=0 (the tests of what a killed or interrupted command leaves behind)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PVF_WARM="1")
    env.pop("PYTEST_CURRENT_TEST", None)  # per test: it would key a new worker for each
    env.pop("PYTEST_XDIST_WORKER", None)  # per xdist worker: both share one warm worker
    env.update(extra)
    # `tests.faulty` importable from a job: a fault injected inside its run
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("MLFLOW_TRACKING_URI", None)  # mlflow.set_tracking_uri in earlier tests exports it
    return env


def pvf(cwd, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "prompt_vs_finetune", *args], cwd=cwd,
                          env=job_env(), capture_output=True, text=True, timeout=timeout)


def runs_in(cwd, parents: bool = False):
    """The job runs in cwd's store; with `parents`, the sweeps' parent runs too."""
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments) if experiments else []
    return client, [r for r in runs if parents or r.data.tags.get("pvf.parent") != "true"]


@pytest.fixture(scope="module")
def four_arm_sweep(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("sweep")
    result = pvf(cwd, "-m", f"arm={','.join(ARMS)}", "task=intent_sample", "model=tiny")
    assert result.returncode == 0, result.stderr[-3000:]
    client, runs = runs_in(cwd)
    return cwd, client, {run.data.tags["arm"]: run for run in runs}, len(runs)


def test_multirun_gives_one_finished_run_per_arm(four_arm_sweep):
    cwd, _, by_arm, n_runs = four_arm_sweep
    assert n_runs == 4 and set(by_arm) == set(ARMS)
    for arm, run in by_arm.items():
        assert run.info.status == "FINISHED", arm
        missing = [k for k in REQUIRED_METRICS if k not in run.data.metrics]
        assert not missing, (arm, missing)
    assert len(list((cwd / "multirun").glob("*/*/.hydra/config.yaml"))) == 4


def test_fitted_arms_log_losses_and_beat_chance_widely(four_arm_sweep):
    _, client, by_arm, _ = four_arm_sweep
    for arm in ("full_finetune", "lora"):
        metrics = by_arm[arm].data.metrics
        assert metrics["test/accuracy"] >= 4 * CHANCE, (arm, metrics["test/accuracy"])
        assert metrics["test/accuracy"] > by_arm["zero_shot"].data.metrics["test/accuracy"]
        assert metrics["cost/train_seconds"] > 0 and metrics["cost/train_tokens"] > 0
        history = client.get_metric_history(by_arm[arm].info.run_id, "train/loss")
        assert len(history) > 1 and history[-1].value < history[0].value
        assert "val/loss" in metrics
    lora, full = by_arm["lora"].data.metrics, by_arm["full_finetune"].data.metrics
    assert 0 < lora["cost/trainable_params"] < full["cost/trainable_params"]
    assert by_arm["few_shot"].data.metrics["fewshot/demos_used"] == 8


def test_offline_hub_model_is_one_clear_line(tmp_path):
    result = pvf(tmp_path, "model=gpt2", "task=intent_sample", timeout=180)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "model=tiny" in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    _, runs = runs_in(tmp_path)
    assert not [r for r in runs if r.info.status == "FINISHED"]


def test_missing_data_file_and_label_column_name_the_culprit(tmp_path):
    missing = pvf(tmp_path, "model=tiny", "task=intent_sample",
                  f"task.data_files.train={tmp_path}/absent.jsonl", timeout=180)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert f"error: data file not found: {tmp_path}/absent.jsonl" in missing.stderr
    # once: the error line on stderr, not also a log line on stdout
    assert "error:" not in missing.stdout and missing.stderr.count("error:") == 1
    column = pvf(tmp_path, "model=tiny", "task=intent_sample", "task.label_field=intent",
                 timeout=180)
    assert column.returncode == 2
    assert "error: column 'intent' (task.label_field) not found" in column.stderr


GENERATION_METRICS = ("test/rouge1", "test/rouge2", "test/rougeL", "test/rougeLsum",
                      "test/perplexity", "test/gen_length_mean", "cost/generated_tokens",
                      "cost/usd_per_1k_predictions", "cost/eval_tokens")


def test_summarization_sweep_all_arms(tmp_path):
    """Four arms on summary_sample; 12 epochs (not tiny's 30) and 30 of the 40 test dialogues
    keep the test near two minutes."""
    result = pvf(tmp_path, "-m", f"arm={','.join(ARMS)}", "task=summary_sample", "model=tiny",
                 "model.max_epochs=12", "arm.k=2", "test_size=30")
    assert result.returncode == 0, result.stderr[-3000:]
    client, runs = runs_in(tmp_path)
    by_arm = {run.data.tags["arm"]: run for run in runs}
    assert len(runs) == 4 and set(by_arm) == set(ARMS)
    for arm, run in by_arm.items():
        assert run.info.status == "FINISHED", arm
        missing = [k for k in GENERATION_METRICS if k not in run.data.metrics]
        assert not missing, (arm, missing)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"predictions.csv", "samples.md", "config.yaml"} <= artifacts, arm
    zero = by_arm["zero_shot"].data.metrics["test/rougeL"]
    # margins for this 12-epoch budget on real DialogSum (2026-12-06: full 0.196 and LoRA
    # 0.073 against zero-shot's 0.002)
    for arm, margin in (("full_finetune", 0.1), ("lora", 0.03)):
        metrics = by_arm[arm].data.metrics
        assert metrics["test/rougeL"] > zero + margin, (arm, metrics["test/rougeL"], zero)
        assert metrics["test/perplexity"] < by_arm["zero_shot"].data.metrics["test/perplexity"]


@pytest.mark.parametrize(("args", "message"), [
    (["task=nope"], "unknown task 'nope'; choose one of: banking77, cnn_dailymail, dialogsum"),
    (["-m", "arm=zero_shot,bogus"], "unknown arm 'bogus'; choose one of: few_shot, full_finetune"),
    (["model=gpt3"], "unknown model 'gpt3'; choose one of: claude, distilgpt2, gpt2"),
    (["arm.bogus=1"], "unknown config key 'arm.bogus': check its spelling (`pvf --cfg job` "
                      "prints every key), or add it with +arm.bogus=1"),
    (["seed=1=2"], "cannot parse the overrides (mismatched input '=' expecting <EOF>)"),
])
def test_config_mistakes_are_one_line(args, message):
    from prompt_vs_finetune.cli import config_error

    assert config_error(args).startswith(message)
    assert config_error(["task=intent_sample", "-m", "seed=0,1", "arm.k=2"]) is None


def test_config_mistake_exits_2_with_one_line(tmp_path):
    result = pvf(tmp_path, "task=intent_smaple")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: unknown task 'intent_smaple'; choose one of: banking77, cnn_dailymail, "
        "dialogsum, intent_sample, samsum, summary_sample, xsum"]
