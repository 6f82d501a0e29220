"""Report maths on a synthetic MLflow store whose numbers the test chooses."""

import math

import mlflow
import pytest
from scipy import stats

from prompt_vs_finetune import report

CELLS = {  # (arm, n_labels): accuracies over seeds 0, 1, 2
    ("zero_shot", 0): [0.30, 0.30, 0.30],
    ("few_shot", 4): [0.60, 0.62, 0.64],
    ("full_finetune", 16): [0.55, 0.60, 0.65],
    ("full_finetune", 64): [0.80, 0.82, 0.84],
    ("lora", 16): [0.50, 0.52, 0.54],
    ("lora", 64): [0.78, 0.80, 0.82],
}
TRAIN_USD = {"full_finetune": 1.0, "lora": 0.25, "zero_shot": 0.0, "few_shot": 0.0}
PER_1K = {"zero_shot": 0.01, "few_shot": 0.05, "full_finetune": 0.01, "lora": 0.012}


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("intent_sample")
    for (arm, n), values in CELLS.items():
        for seed, value in enumerate(values):
            with mlflow.start_run(tags={"arm": arm, "task": "intent_sample", "model": "tiny",
                                        "seed": str(seed)}):
                mlflow.log_metrics({
                    "test/accuracy": value, "test/perplexity": 2.0,
                    "data/n_train": n if arm in report.FITTED else 100,
                    "fewshot/demos_used": n if arm == "few_shot" else 0,
                    "cost/usd_per_1k_predictions": PER_1K[arm],
                    "cost/train_usd": TRAIN_USD[arm], "cost/train_seconds": 1.0,
                    "cost/trainable_params": 1000.0 if arm == "full_finetune" else 10.0})
    mlflow.start_run(tags={"arm": "lora", "task": "intent_sample", "model": "tiny"})
    mlflow.log_metric("test/accuracy", 0.99)
    mlflow.end_run("FAILED")  # a failed job must not count
    return uri


def test_means_and_t_intervals(store):
    runs = report.load_runs(store)
    assert len(runs) == 18  # the FAILED run is left out
    table = report.summarise(runs).set_index(["arm", "n_labels"])
    few = table.loc[("few_shot", 4)]
    assert few["quality"] == pytest.approx(0.62)
    assert few["quality_ci"] == pytest.approx(stats.t.ppf(0.975, 2) * 0.02 / math.sqrt(3))
    assert table.loc[("zero_shot", 0), "quality_ci"] == pytest.approx(0.0)
    assert table.loc[("full_finetune", 64), "runs"] == 3


def test_crossover_and_recommendation(store):
    table = report.summarise(report.load_runs(store))
    found = report.crossover(table, "full_finetune")
    assert found["n_labels"] == 64 and found["prompt"]["arm"] == "few_shot"
    assert report.crossover(table, "lora")["n_labels"] == 64
    words = " ".join(report.recommend(table, "accuracy"))
    assert "Best prompting arm: few_shot with 4 demonstration(s)" in words
    assert "Fine-tune (full_finetune) once you have about 64 labelled examples" in words
    assert "With fewer labels (16) it does not clearly beat prompting" in words
    assert "LoRA reaches accuracy 0.800" in words and "at 25% of its training cost" in words


def test_pareto_front(store):
    table = report.summarise(report.load_runs(store)).set_index(["arm", "n_labels"])
    front = report.pareto_front(table.reset_index()).tolist()
    marked = {key for key, on in zip(table.index, front, strict=True) if on}
    # cheapest-and-best: full_finetune at 64 (0.82 at 0.01); nothing else is undominated
    assert marked == {("full_finetune", 64)}


def test_single_seed_is_called_thin(tmp_path):
    uri = f"sqlite:///{tmp_path / 'one.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("t")
    for arm in ("zero_shot", "lora"):
        with mlflow.start_run(tags={"arm": arm, "task": "t", "model": "tiny", "seed": "0"}):
            mlflow.log_metrics({"test/accuracy": 0.5, "data/n_train": 10})
    table = report.summarise(report.load_runs(uri))
    assert report.recommend(table, "accuracy")[0].startswith("Evidence too thin")


def test_report_files_and_summary_run(store, tmp_path):
    out = tmp_path / "report"
    report.main(["--tracking-uri", store, "--out", str(out)])
    for name in ("report.md", "table.csv", "summary.json", "recommendation_intent_sample_tiny.txt",
                 "plots/intent_sample_tiny_quality_vs_cost.png",
                 "plots/intent_sample_tiny_data_efficiency.png",
                 "plots/intent_sample_tiny_prompt_sensitivity.png"):
        assert (out / name).stat().st_size > 0, name
    assert len((out / "table.csv").read_text().splitlines()) == 1 + len(CELLS)
    client = mlflow.tracking.MlflowClient(store)
    summary = client.search_runs([client.get_experiment_by_name("pvf-report").experiment_id])
    assert {a.path for a in client.list_artifacts(summary[0].info.run_id)} >= {"report.md"}
    assert len(report.load_runs(store)) == 18  # the summary run is not a job


def test_prompt_sensitivity_spread(tmp_path):
    """Few-shot over 2 templates x 2 demo orders: range, std, and the gap between templates."""
    uri = f"sqlite:///{tmp_path / 'ps.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("t")
    values = {("default", 0): 0.50, ("default", 1): 0.60, ("question", 0): 0.20,
              ("question", 1): 0.30}
    for (prompt, order), value in values.items():
        with mlflow.start_run(tags={"arm": "few_shot", "task": "t", "model": "tiny", "seed": "0",
                                    "prompt": prompt}):
            mlflow.log_param("arm.order_seed", order)
            mlflow.log_metrics({"test/accuracy": value, "fewshot/demos_used": 4})
    runs = report.load_runs(uri)
    spread = report.sensitivity(runs).iloc[0]
    assert (spread["runs"], spread["templates"], spread["orders"]) == (4, 2, 2)
    assert (spread["min"], spread["max"]) == (0.20, 0.60)
    assert spread["std"] == pytest.approx(0.1826, abs=1e-4)
    assert spread["best_template"] == "default" and spread["template_gap"] == pytest.approx(0.30)
    out = tmp_path / "out"
    report.write_report(runs, out)
    assert "| few_shot | 4 | 4 | 2 | 2 | 1 | 0.200 | 0.600 | 0.183 | default | question | 0.300 |" \
        in (out / "report.md").read_text()
