"""A job in-process: its MLflow run, params, metrics, artifacts and final status."""

from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from prompt_vs_finetune import job
from prompt_vs_finetune.errors import UserError
from prompt_vs_finetune.models.loading import load_model
from prompt_vs_finetune.tracking.provenance import config_hash
from prompt_vs_finetune.train.module import ArmModule
from prompt_vs_finetune.train.resume import ResumeState, file_sha256

from .conftest import compose_config

FAST = ("task=intent_sample", "model=tiny", "test_size=16", "model.tiny.n_layer=1",
        "model.tiny.n_embd=32", "model.tiny.n_head=2", "model.tiny.vocab_size=400")


def only_run(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1
    return client, runs[0]


def test_zero_shot_run_is_logged(tmp_path):
    results = job.run(compose_config(tmp_path, *FAST, "arm=few_shot", "arm.k=4"))
    client, run = only_run(tmp_path)
    assert run.info.status == "FINISHED"
    assert run.data.tags["arm"] == "few_shot" and run.data.tags["task"] == "intent_sample"
    assert run.data.tags["model"] == "tiny" and run.data.tags["seed"] == "0"
    assert run.data.params["arm.k"] == "4" and run.data.params["task.name"] == "intent_sample"
    assert run.data.params["model.tiny.n_layer"] == "1"
    metrics = run.data.metrics
    assert metrics["test/accuracy"] == pytest.approx(results["test/accuracy"])
    assert 0.0 <= metrics["test/accuracy"] <= 1.0 and metrics["test/perplexity"] > 1.0
    assert metrics["fewshot/demos_used"] == 4 and metrics["data/n_test"] == 16
    for key in ("cost/eval_seconds", "cost/eval_tokens", "cost/flops", "cost/peak_memory_mb",
                "cost/usd", "cost/usd_per_1k_predictions", "cost/latency_ms_per_example"):
        assert metrics[key] > 0, key
    assert metrics["cost/train_seconds"] == 0 and metrics["cost/trainable_params"] == 0
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "predictions.csv", "confusion_matrix.png"} <= artifacts
    table = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/predictions.csv").splitlines()
    assert table[0] == "text,gold,predicted,score,gold_logprob" and len(table) == 17


def test_a_job_that_raises_ends_its_run_failed(tmp_path, monkeypatch):
    def boom(self):
        raise RuntimeError("scorer exploded")

    monkeypatch.setattr(ArmModule, "on_test_epoch_end", boom)
    with pytest.raises(RuntimeError, match="scorer exploded"):
        job.run(compose_config(tmp_path, *FAST, "arm=zero_shot", "cache_predictions=false"))
    _, run = only_run(tmp_path)
    assert run.info.status == "FAILED"


@pytest.mark.parametrize(("overrides", "message"), [
    (("arm=few_shot", "arm.k=5000"), r"arm.k=5000 but the train pool has \d+ examples; lower"),
    (("arm=full_finetune", "arm.lr=0"),
     r"arm.lr=0 is outside \(0, inf\]; set arm.lr > 0 \(or model.finetune_lr\)"),
    (("arm=lora", "arm.lr=-1e-4"), r"arm.lr=-0.0001 is outside .*\(or model.lora_lr\)"),
    (("arm=full_finetune", "model.max_epochs=0"),
     r"arm.max_epochs=0 is not >= 1; set model.max_epochs \(or arm.max_epochs\) >= 1"),
    (("scorer.length_norm=bogus",), r"scorer.length_norm='bogus' is unknown; use one of none"),
    (("arm=lora", "arm.batch_size=0"), r"arm.batch_size=0 is not >= 1; use >= 1"),
    (("arm=lora", "arm.lr=fast"), r"arm.lr='fast' is not a number; set arm.lr > 0"),
    (("model.max_length=5000",), r"model.max_length=5000 is beyond the 1024 positions"),
    (("seed=-5",), r"seed=-5 is not 0..4294967295"),
    (("task=summary_sample", "decoding=beam", "decoding.num_beams=0"),
     r"decoding.num_beams=0 is not >= 1"),
    (("task=summary_sample", "decoding=sampling", "decoding.temperature=0"),
     r"decoding.temperature=0 is outside \(0, inf\]"),
    (("results_file=/proc/pvf/r.json",), r"cannot write to /proc/pvf \(results_file\)"),
    (("train_size=100000",), r"train_size=100000 but the task has 280 labelled examples"),
])
def test_bad_input_fails_before_any_run_exists(tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        job.run(compose_config(tmp_path, *FAST, *overrides))
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert not client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_nan_loss_stops_with_the_step_and_fails_the_run(tmp_path):
    """Weights so large that the first loss is not finite: the job stops at once, naming the
    step, and its run ends FAILED with that message as its error tag."""
    with pytest.raises(UserError, match=r"training loss became nan at step 0 \(epoch 0\)"):
        job.run(compose_config(tmp_path, *FAST, "arm=full_finetune",
                                      "model.tiny.initializer_range=1e30"))
    _, run = only_run(tmp_path)
    assert run.info.status == "FAILED" and "step 0" in run.data.tags["error"]


def test_same_config_and_seed_give_identical_results_and_data_hashes(tmp_path):
    """Determinism on CPU: fine-tuning twice with one config and seed gives the same metrics,
    and the logged hashes show both runs saw the same split, train subset and demos."""
    args = (*FAST, "arm=full_finetune", "model.max_epochs=2", "train_size=64")
    first = job.run(compose_config(tmp_path / "a", *args))
    second = job.run(compose_config(tmp_path / "b", *args))
    for key in ("test/accuracy", "test/perplexity", "cost/train_tokens"):
        assert first[key] == second[key], key
    _, run_a = only_run(tmp_path / "a")
    _, run_b = only_run(tmp_path / "b")
    hashes = [k for k in run_a.data.params if k.endswith("_sha256")]
    assert len(hashes) == 4 and all(run_a.data.params[k] == run_b.data.params[k] for k in hashes)
    job.run(compose_config(tmp_path / "c", *FAST, "arm=full_finetune",
                                  "model.max_epochs=2", "train_size=64", "seed=1"))
    _, run_c = only_run(tmp_path / "c")
    assert run_c.data.params["data.train_sha256"] != run_a.data.params["data.train_sha256"]


def test_secrets_never_reach_mlflow(tmp_path):
    secret = "sk-live-abc123"
    job.run(compose_config(tmp_path, *FAST, f"+model.api_key={secret}",
                                  f"+task.hf_token={secret}",
                                  f"+notes.endpoint=https://bob:{secret}@example.com/v1"))
    client, run = only_run(tmp_path)
    assert run.data.params["model.api_key"] == "***"
    assert run.data.params["notes.endpoint"] == "https://bob:***@example.com/v1"
    stored = [*run.data.params.values(), *run.data.tags.values(),
              open(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path))).read()]
    assert not any(secret in value for value in stored)


def test_unreachable_tracking_server_fails_fast_without_a_run(tmp_path):
    cfg = compose_config(tmp_path, *FAST, "mlflow.tracking_uri=http://bob:pw@127.0.0.1:9")
    with pytest.raises(UserError, match=r"cannot use the MLflow tracking store "
                                        r"'http://bob:\*\*\*@127.0.0.1:9'.*cannot be reached"):
        job.run(cfg)


def test_corrupted_files_are_named(tmp_path):
    """A truncated weights file, and a resume checkpoint that is not one."""
    cfg = compose_config(tmp_path, *FAST, "arm=full_finetune")
    state = ResumeState(Path(cfg.paths.resume_dir) / config_hash(cfg), "data-hash",
                        cfg.mlflow.tracking_uri)
    state.folder.mkdir(parents=True)
    (state.folder / "last.ckpt").write_bytes(b"not a checkpoint")
    # its checksum matches (written with it): the file itself is what cannot be read
    (state.folder / "last.ckpt.sha256").write_text(file_sha256(state.folder / "last.ckpt"))
    with pytest.raises(UserError, match=r"checkpoint .*last.ckpt is unreadable.*resume=false"):
        state._check_checkpoint()

    model, _ = load_model(cfg.model, str(tmp_path / "cache"), ["refund please"] * 50)
    path = Path(model.name_or_path)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(UserError, match="weights of model .* are unreadable"):
        load_model(compose_config(tmp_path, "model=gpt2", f"model.name_or_path={path}").model,
                   str(tmp_path))


def test_identical_inference_work_costs_the_same_per_prediction(tmp_path):
    """Zero-shot and a fine-tuned copy of the same model read the same prompts: the same
    per-prediction cost (timing noise does not enter it). Few-shot pays for its demos on
    every call."""
    zero = job.run(compose_config(tmp_path / "zero", *FAST, "arm=zero_shot"))
    tuned = job.run(compose_config(tmp_path / "tuned", *FAST, "arm=full_finetune",
                                   "model.max_epochs=1", "train_size=32"))
    few = job.run(compose_config(tmp_path / "few", *FAST, "arm=few_shot", "arm.k=4"))
    key = "cost/usd_per_1k_predictions"
    assert tuned[key] == pytest.approx(zero[key], rel=0.05)
    assert tuned["cost/tokens_per_prediction"] == zero["cost/tokens_per_prediction"]
    assert few["cost/tokens_per_prediction"] > zero["cost/tokens_per_prediction"] + 4 * 5
    assert few[key] / zero[key] == pytest.approx(  # each logged to 4 significant digits
        few["cost/tokens_per_prediction"] / zero["cost/tokens_per_prediction"], rel=1e-3)


def test_a_label_budget_holds_validation_and_is_logged(tmp_path):
    """train_size=16 on intent_sample (no validation split of its own): 14 train + 2
    validation, data/n_labels 16, where the validation set used to be 10% of the whole train
    split on top of the budget."""
    results = job.run(compose_config(tmp_path, *FAST, "arm=lora", "train_size=16",
                                     "model.max_epochs=1"))
    assert (results["data/n_train"], results["data/n_validation"]) == (14, 2)
    assert results["data/n_labels"] == 16 and results["data/test_overlap"] == 0


def test_a_small_budget_trains_at_least_min_steps(tmp_path):
    """arm.min_steps: 14 train examples in batches of 16 are one step an epoch, so one epoch
    becomes six (six validations); 60 examples (54 train: four steps an epoch) stay at
    max_epochs=2."""
    base = (*FAST, "arm=lora", "model.max_epochs=1", "arm.min_steps=6")
    job.run(compose_config(tmp_path / "small", *base, "train_size=16"))
    client = MlflowClient(f"sqlite:///{tmp_path / 'small' / 'mlflow.db'}")
    run = client.search_runs([e.experiment_id for e in client.search_experiments()])[0]
    assert len(client.get_metric_history(run.info.run_id, "val/loss")) == 6
    assert run.data.params["arm.min_steps"] == "6"
    job.run(compose_config(tmp_path / "large", *base, "train_size=60", "arm.max_epochs=2"))
    client = MlflowClient(f"sqlite:///{tmp_path / 'large' / 'mlflow.db'}")
    run = client.search_runs([e.experiment_id for e in client.search_experiments()])[0]
    assert len(client.get_metric_history(run.info.run_id, "val/loss")) == 2


def test_arms_stay_themselves(tmp_path, caplog):
    """A sweep's arm.k reaches every arm: zero-shot still shows no demos (and logs k=0);
    few-shot with k=0 would be zero-shot under another name, and is refused."""
    results = job.run(compose_config(tmp_path, *FAST, "arm=zero_shot", "arm.k=2"))
    assert results["fewshot/demos_used"] == 0 and results["data/n_labels"] == 0
    _, run = only_run(tmp_path)
    assert run.data.params["arm.k"] == "0" and run.data.tags["k"] == "0"
    with pytest.raises(UserError, match=r"arm.k=0 leaves arm=few_shot without demonstrations"):
        job.run(compose_config(tmp_path / "b", *FAST, "arm=few_shot", "arm.k=0"))
    with pytest.raises(UserError, match=r"arm.k=-1 is not >= 0"):
        job.run(compose_config(tmp_path / "c", *FAST, "arm=few_shot", "arm.k=-1"))


def test_test_examples_seen_in_training_are_counted_or_refused(tmp_path):
    """The train file as the test file: every test example is a labelled one."""
    train = "pkg://prompt_vs_finetune/resources/datasets/intent_sample/train.jsonl"
    same = (f"task.data_files.test={train}", "test_size=8")
    results = job.run(compose_config(tmp_path, *FAST, *same, "arm=zero_shot"))
    assert results["data/test_overlap"] == 8
    with pytest.raises(UserError, match=r"8 of 8 test examples also appear among the labelled"):
        job.run(compose_config(tmp_path / "b", *FAST, *same, "task.overlap=error"))
    client = MlflowClient(f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}")
    assert not client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_a_fit_that_never_saw_a_test_label_is_counted_and_warned(tmp_path, caplog):
    """Issue 38: train_size=13 on 14 intents leaves one class out of the class-balanced budget;
    the test examples of that class are counted (data/test_unseen_labels) and the fit warned."""
    results = job.run(compose_config(tmp_path, *FAST, "arm=lora", "train_size=13",
                                     "test_size=64", "model.max_epochs=1"))
    assert results["data/classes_covered"] == 13
    assert 0 < results["data/test_unseen_labels"] < 64
    assert "have a label no labelled example has" in caplog.text
