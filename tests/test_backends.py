"""One job, two backends: on the same task, a local model and a hosted chat model log the same
metric and cost keys (tracking/keys.py lists them, and which few need local weights or exist
only for hosted models), and each shared key is the same quantity for both."""

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from prompt_vs_finetune import job
from prompt_vs_finetune.tasks import task_type
from prompt_vs_finetune.tracking.keys import BOTH, COMMON, KEYS

from .chat_stub import StubAPI
from .conftest import compose_config
from .test_run import FAST

README = Path(__file__).parents[1] / "docs" / "tracking.md"


def expected_keys(backend: str, type_name: str, fitted: bool) -> set[str]:
    """The keys a finished run of this backend, task type and arm logs (tracking/keys.py)."""
    return {name for name, key in {**COMMON, **task_type(type_name).keys}.items()
            if backend in key.backends and (fitted or not key.fitted_only)
            and key.run == "job" and not key.optional}


def _metrics(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    return runs[0].data.metrics


def _local(tmp_path, task, *extra):
    job.run(compose_config(tmp_path, *FAST, f"task={task}", "test_size=8", *extra))
    return _metrics(tmp_path)


def _hosted(tmp_path, task, monkeypatch, *extra):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    with StubAPI(lambda system, prompt: "not sure") as stub:  # names no label
        job.run(compose_config(tmp_path, f"task={task}", "model=claude", "test_size=8",
                               f"model.api.base_url={stub.url}",
                               f"paths.cache_dir={tmp_path / 'cache'}", *extra))
    return _metrics(tmp_path)


@pytest.mark.parametrize("task,task_type", [("intent_sample", "classification"),
                                            ("summary_sample", "generation")])
def test_local_and_hosted_runs_log_the_same_keys_meaning_the_same(tmp_path, monkeypatch,
                                                                  task, task_type):
    k = 2 if task_type == "classification" else 1  # two dialogues overflow tiny's context
    local = _local(tmp_path / "local", task, "arm=few_shot", f"arm.k={k}")
    hosted = _hosted(tmp_path / "hosted", task, monkeypatch, "arm=few_shot", f"arm.k={k}")
    assert set(local) == expected_keys("local", task_type, fitted=False)
    assert set(hosted) == expected_keys("hosted", task_type, fitted=False)
    shared = {k for k, key in KEYS.items() if key.backends == BOTH} & set(local)
    assert shared == set(local) & set(hosted)
    for run in (local, hosted):  # each derived key is derived the same way from its inputs
        n = run["data/n_test"]
        assert n == 8 and run["fewshot/demos_used"] == k
        assert run["cost/latency_ms_per_example"] == pytest.approx(  # each to 4 digits
            run["cost/eval_seconds"] / n * 1000, rel=1e-3)
        assert run["cost/usd_per_1k_predictions"] == pytest.approx(
            (run["cost/usd"] - run["cost/train_usd"]) / n * 1000, rel=1e-3)
        assert run["cost/eval_tokens"] > run["cost/generated_tokens"] >= 0
        assert run["cost/train_seconds"] == 0 and run["cost/trainable_params"] == 0
    if task_type == "classification":
        assert local["test/unparsed_rate"] == 0  # ranking always names a label
        assert hosted["test/unparsed_rate"] == 1  # an unparsed reply is wrong, not a class
        assert hosted["test/accuracy"] == 0 and hosted["test/macro_f1"] == 0
    else:
        assert local["cost/eval_only_tokens"] > 0 == hosted["cost/eval_only_tokens"]
        assert local["test/gen_length_mean"] * n == pytest.approx(local["cost/generated_tokens"])
        assert hosted["test/gen_length_mean"] * n == pytest.approx(
            hosted["cost/generated_tokens"])


def test_a_fitted_run_logs_its_training_keys(tmp_path):
    metrics = _local(tmp_path, "intent_sample", "arm=lora", "model.max_epochs=1",
                     "train_size=32", "trainer.log_every_n_steps=1",
                     "arm.min_validation=4")  # 3 validation examples: a fixed schedule
    assert set(metrics) == expected_keys("local", "classification", fitted=True)
    assert metrics["cost/train_seconds"] > 0 and metrics["cost/trainable_params"] > 0


def test_the_readme_explains_every_key():
    text = README.read_text()
    missing = [name for name in KEYS if f"`{name}`" not in text]
    assert not missing, f"README does not explain {missing}"
