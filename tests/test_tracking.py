"""What a run records for a reader: params, names, datasets, tags, parents, system metrics and
models (sweeps' parents: test_sweeps.py)."""

import json
import threading

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from prompt_vs_finetune import job
from prompt_vs_finetune.tracking.naming import MAX_PARAM_CHARS, flatten, job_record
from prompt_vs_finetune.tracking.provenance import config_hash, split_changes
from prompt_vs_finetune.tracking.secrets import redact_override
from prompt_vs_finetune.tracking.store import SAVED_VIEW_TAG

from .conftest import compose_config
from .test_run import FAST


def run_name(cfg):
    return job_record(cfg).name


def job_tags(cfg):
    return job_record(cfg).tags


def test_flatten_nested_config_into_mlflow_safe_params():
    flat = flatten({"arm": {"lora": {"r": 8, "target_modules": ["c_attn", "c_fc"]}},
                    "task": {"labels": {"reverted_card_payment?": "reverted card payment"}},
                    "template": "x" * (MAX_PARAM_CHARS + 10), "empty": {}, "none": None})
    assert flat["arm.lora.r"] == "8"
    assert flat["arm.lora.target_modules"] == "['c_attn', 'c_fc']"
    assert flat["task.labels.reverted_card_payment_"] == "reverted card payment"
    assert len(flat["template"]) == MAX_PARAM_CHARS and flat["template"].endswith("...")
    assert flat["empty"] == "{}" and flat["none"] == "None"


def test_secrets_in_urls_are_redacted_at_any_depth():
    from prompt_vs_finetune.tracking.secrets import redact

    config = {"model": {"api": {"base_url": "https://gw.example/v1?api_key=sk-1&region=eu",
                                "api_key_env": "OPENAI_API_KEY"}},
              "mlflow": {"tracking_uri": "https://bob:pw@mlflow.example"},
              "notes": ["https://x.example/?token=t0k&a=1#top", "key=not-a-url-query"]}
    clean = redact(config)
    assert clean["model"]["api"]["base_url"] == "https://gw.example/v1?api_key=***&region=eu"
    assert clean["model"]["api"]["api_key_env"] == "OPENAI_API_KEY"  # a name, not a secret
    assert clean["mlflow"]["tracking_uri"] == "https://bob:***@mlflow.example"
    assert clean["notes"] == ["https://x.example/?token=***&a=1#top", "key=not-a-url-query"]


# -- what the MLflow dashboard shows ------------------------------------------------------


def _runs(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiments = {e.experiment_id: e for e in client.search_experiments()}
    return client, experiments, client.search_runs(list(experiments))


def test_run_names_say_what_differs_and_a_name_of_ones_own_wins(tmp_path):
    def name(*overrides):
        return run_name(compose_config(tmp_path, "task=intent_sample", "model=tiny",
                                       *overrides))

    assert name("arm=few_shot", "arm.k=4") == "few_shot k=4 · tiny · seed0"
    assert name("arm=few_shot", "arm.k=8") == "few_shot k=8 · tiny · seed0"
    assert name("arm=few_shot", "arm.k=4", "task.prompt=question", "train_size=64",
                "seed=1") == "few_shot k=4 · question · n=64 · tiny · seed1"
    assert name("arm=few_shot", "arm.k=4", "arm.order_seed=2") == \
        "few_shot k=4 order2 · tiny · seed0"
    assert name("arm=few_shot", "arm.k=4", "task.template='Q: {text}\nA:'") == \
        "few_shot k=4 · custom prompt · tiny · seed0"
    # zero-shot shows no demonstrations whatever arm.k says (config.fill_inherited sets it to 0)
    assert name("arm=zero_shot", "arm.k=4", "inference_dtype=bfloat16") == \
        "zero_shot · tiny · bfloat16 · seed0"
    assert name("arm=lora", "mlflow.run_name=mine") == "mine"


def test_params_read_well_and_the_datasets_used_are_logged(tmp_path):
    """Few-shot: the label map is two params, not one per label, and only the chosen
    template is one; the datasets are the demonstrations shown and the test split, with the
    params' hashes as digests; the runs table has its saved views."""
    cfg = compose_config(tmp_path, *FAST, "test_size=8", "arm=few_shot", "arm.k=2")
    job.run(cfg)
    client, experiments, [run] = _runs(tmp_path)
    params, tags = run.data.params, run.data.tags
    assert not [k for k in params if k.startswith(("task.labels.", "task.templates.",
                                                   "decoding."))]  # classification: no decoding
    assert params["task.n_labels"] == "14" and len(params["task.labels_hash"]) == 16
    assert params["task.template"].startswith("Customer message: {text}")
    assert run.info.run_name == params["mlflow.run_name"] == "few_shot k=2 · tiny · seed0"
    assert run.data.metrics["data/n_classes"] == 14
    assert tags["config_hash"] == config_hash(cfg)
    assert tags["variant"] == f"few_shot k=2 · tiny #{tags['cell'][:8]}"
    assert "mlflow.parentRunId" not in tags  # a single job nests under nothing
    inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"intent_sample/demos", "intent_sample/test"}
    context = {name: {t.key: t.value for t in i.tags}["mlflow.data.context"]
               for name, i in inputs.items()}
    assert context == {"intent_sample/demos": "demos", "intent_sample/test": "test"}
    assert inputs["intent_sample/test"].dataset.digest == params["data.test_sha256"]
    assert inputs["intent_sample/demos"].dataset.digest == params["fewshot.demos_sha256"]
    assert json.loads(inputs["intent_sample/test"].dataset.source)["uri"].endswith(
        "intent_sample/test.jsonl")
    assert json.loads(inputs["intent_sample/demos"].dataset.profile)["num_rows"] == 2
    table = mlflow.load_table("predictions.json", run_ids=[run.info.run_id])
    assert len(table) == 8 and {"text", "gold", "predicted"} <= set(table.columns)
    views = {k: json.loads(v) for k, v in experiments[run.info.experiment_id].tags.items()
             if k.startswith(SAVED_VIEW_TAG)}
    assert {v["name"] for v in views.values()} == {"pvf: compare runs", "pvf: mean over seeds"}
    state = json.loads(views[SAVED_VIEW_TAG + "pvf-runs"]["state"])
    assert state["selectedColumns"][:3] == [
        "attributes.`Dataset`", "attributes.`Models`", "metrics.`test/accuracy`"]
    assert client.search_runs([run.info.experiment_id], state["searchFilter"])  # it parses
    # the comparison's metrics first, after the run's name and date (scripts/check_mlflow_ui.py
    # saw test/accuracy cut off at the right edge without it)
    assert state["columnOrder"][:3] == [
        "attributes.`Run Name`", "runDateAndNestInfo", "metrics.`test/accuracy`"]
    # MLflow 3's UI opens an experiment of this kind on its runs table, not its GenAI pages
    assert experiments[run.info.experiment_id].tags["mlflow.experimentKind"] == \
        "custom_model_development"


def test_a_fitted_run_logs_its_learning_rate_and_a_loadable_model(tmp_path):
    """LoRA with mlflow.log_model=true: train/lr per step (linear decay from arm.lr), the
    train / validation / test datasets, and a model that loads with its trained adapter."""
    job.run(compose_config(tmp_path, *FAST, "test_size=8", "arm=lora", "train_size=32",
                           "model.max_epochs=1", "trainer.log_every_n_steps=1",
                           "mlflow.log_model=true"))
    client, _, [run] = _runs(tmp_path)
    lrs = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "train/lr"),
                                   key=lambda m: m.step)]
    assert len(lrs) >= 2 and lrs[0] == pytest.approx(float(run.data.params["arm.lr"]))
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))
    context = {i.dataset.name: {t.key: t.value for t in i.tags}["mlflow.data.context"]
               for i in run.inputs.dataset_inputs}
    assert context == {"intent_sample/train": "training",
                       "intent_sample/validation": "validation", "intent_sample/test": "test"}
    digests = {i.dataset.name: i.dataset.digest for i in run.inputs.dataset_inputs}
    assert digests["intent_sample/train"] == run.data.params["data.train_sha256"]
    [model] = client.search_logged_models([run.info.experiment_id])
    assert model.source_run_id == run.info.run_id and model.name == "model"
    pipeline = mlflow.transformers.load_model(model.model_uri)
    trained_b = [p for name, p in pipeline.model.named_parameters() if "lora_B" in name]
    assert trained_b and any(p.abs().sum() > 0 for p in trained_b)  # LoRA's B starts at zero
    assert isinstance(pipeline("refund please", max_new_tokens=2)[0]["generated_text"], str)


def test_a_full_fine_tune_logs_the_whole_model(tmp_path):
    """full_finetune with mlflow.log_model=true: the weights themselves (every parameter the
    run counted), which load and generate without the Hub."""
    job.run(compose_config(tmp_path, *FAST, "test_size=4", "arm=full_finetune",
                           "train_size=16", "model.max_epochs=1", "mlflow.log_model=true"))
    client, _, [run] = _runs(tmp_path)
    [model] = client.search_logged_models([run.info.experiment_id])
    pipeline = mlflow.transformers.load_model(model.model_uri)
    assert not hasattr(pipeline.model, "peft_config")
    assert sum(p.numel() for p in pipeline.model.parameters()) == \
        run.data.metrics["cost/total_params"] == run.data.metrics["cost/trainable_params"]
    assert isinstance(pipeline("refund please", max_new_tokens=2)[0]["generated_text"], str)
    # a prompting arm has no weights of its own to log
    job.run(compose_config(tmp_path / "zero", *FAST, "test_size=4", "arm=zero_shot",
                           "mlflow.log_model=true"))
    client, _, [run] = _runs(tmp_path / "zero")
    assert not client.search_logged_models([run.info.experiment_id])


def test_a_study_nests_its_jobs_under_one_parent_per_experiment(tmp_path, monkeypatch):
    """Jobs `dvc exp run` starts for a study: in each experiment (task) one FINISHED parent
    named after the study and the DVC experiment, the jobs nested under it, tagged with the
    DVC experiment."""
    monkeypatch.setenv("DVC_STAGE", "run@intent_sample-zero_shot-0")
    monkeypatch.setenv("DVC_EXP_NAME", "gusty-kite")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "0" * 40)
    for task, seed in (("intent_sample", 0), ("intent_sample", 1), ("summary_sample", 0)):
        job.run(compose_config(tmp_path, *FAST, "test_size=4", "arm=zero_shot", f"task={task}",
                               f"seed={seed}", "study=default", "decoding.max_new_tokens=4"))
    _, experiments, runs = _runs(tmp_path)
    parents = [r for r in runs if r.data.tags.get("pvf.parent") == "true"]
    children = [r for r in runs if "pvf.parent" not in r.data.tags]
    assert len(children) == 3 and len(parents) == 2
    assert {experiments[p.info.experiment_id].name for p in parents} == {
        "intent_sample", "summary_sample"}
    for parent in parents:
        assert parent.info.run_name == "study default (gusty-kite)"
        assert parent.info.status == "FINISHED"
        assert parent.data.tags["pvf.group"] == "study:default:exp:gusty-kite"
    by_experiment = {p.info.experiment_id: p.info.run_id for p in parents}
    for child in children:
        tags = child.data.tags
        assert tags["mlflow.parentRunId"] == by_experiment[child.info.experiment_id]
        assert (tags["dvc_exp"], tags["dvc_stage"]) == ("gusty-kite",
                                                       "run@intent_sample-zero_shot-0")
        assert tags["dvc_baseline_rev"] == "0" * 40 and tags["study"] == "default"


def test_system_metrics_are_sampled_and_their_thread_ends_with_the_run(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.1")
    job.run(compose_config(tmp_path, *FAST, "test_size=8", "arm=zero_shot"))
    _, _, [run] = _runs(tmp_path)
    assert "system/cpu_utilization_percentage" in run.data.metrics
    assert not [t for t in threading.enumerate() if t.name == "SystemMetricsMonitor"]
    job.run(compose_config(tmp_path / "off", *FAST, "test_size=8", "arm=zero_shot",
                           "mlflow.system_metrics=false"))
    _, _, [run] = _runs(tmp_path / "off")
    assert not [k for k in run.data.metrics if k.startswith("system/")]


def test_git_dirty_ignores_the_config_files_and_outputs_dvc_rewrites():
    code, ignored = split_changes(
        ["conf/task/banking77.yaml", "conf/config.yaml", "dvc.lock",
         "pipelines/data_efficiency/study.yaml", "pipelines/data_efficiency/dvc.lock",
         "proj/conf/arm/x.yaml", "src/prompt_vs_finetune/job.py", "conf/README.md",
         "results/intent_sample/lora/seed0/metrics.json", "reports/table.csv",
         "results.txt"],
        outputs=["results/intent_sample/lora/seed0/metrics.json", "reports/", "data/x"])
    assert code == ["src/prompt_vs_finetune/job.py", "conf/README.md", "results.txt"]
    assert len(ignored) == 8


def test_dvc_outputs_come_from_the_lock_files(tmp_path, monkeypatch):
    """A stage's outputs from dvc.lock, resolved through the stage's wdir in dvc.yaml."""
    import subprocess

    from prompt_vs_finetune.tracking.provenance import dvc_outputs

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  run@a-0:\n    outs:\n    - path: results/a/metrics.json\n")
    study = tmp_path / "pipelines" / "s"
    study.mkdir(parents=True)
    (study / "dvc.yaml").write_text("stages:\n  finetune:\n    wdir: ../..\n    cmd: x\n")
    (study / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  finetune@b:\n    outs:\n"
        "    - path: pipelines/s/results/b.json\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "-A"], check=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert sorted(dvc_outputs()) == ["pipelines/s/results/b.json", "results/a/metrics.json"]
    monkeypatch.delenv("DVC_ROOT")
    assert dvc_outputs() == []


def test_overrides_are_redacted_like_the_config():
    assert redact_override("+model.api_key=sk-123") == "+model.api_key=***"
    assert redact_override("mlflow.tracking_uri=https://bob:pw@host") == \
        "mlflow.tracking_uri=https://bob:***@host"
    assert redact_override("arm=zero_shot,lora") == "arm=zero_shot,lora"


def test_log_model_refuses_weights_it_cannot_save(tmp_path):
    from prompt_vs_finetune.config import check_config
    from prompt_vs_finetune.errors import UserError

    cfg = compose_config(tmp_path, *FAST, "arm=lora", "inference_dtype=int8",
                         "mlflow.log_model=true")
    with pytest.raises(UserError, match=r"inference_dtype='int8' leaves weights that cannot"):
        check_config(cfg)
    check_config(compose_config(tmp_path, *FAST, "arm=zero_shot", "inference_dtype=int8",
                                "mlflow.log_model=true"))  # nothing fitted, nothing to save


def test_a_parent_is_found_again_and_takes_an_optimising_sweeps_best(tmp_path):
    from prompt_vs_finetune.tracking.naming import Group
    from prompt_vs_finetune.tracking.runs import parent_run
    from prompt_vs_finetune.tracking.sweep import (
        OPTIMISATION_FILE,
        log_sweep_summary,
        optimisation_result,
    )

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("intent_sample")
    group = Group("sweep:/x/multirun/1", "sweep 1: arm.lr=interval(0.0001,0.01)")
    parent = parent_run(uri, experiment, group)
    assert parent_run(uri, experiment, group) == parent  # found by its tags, not made twice
    (tmp_path / OPTIMISATION_FILE).write_text(
        "name: optuna\nbest_params:\n  arm.lr: 0.001\nbest_value: 0.42\n")
    jobs = [{"num": 0, "overrides": ["arm.lr=0.001"], "status": "finished", "error": None},
            {"num": 1, "overrides": ["arm.lr=0.5"], "status": "failed", "error": "nan"}]
    log_sweep_summary(uri, parent, jobs, optimisation_result(tmp_path))
    run = client.get_run(parent)
    assert run.info.run_name == group.name and run.info.status == "FINISHED"
    assert run.data.metrics == {"sweep/jobs": 2, "sweep/jobs_finished": 1,
                                "sweep/jobs_failed": 1, "sweep/best_objective": 0.42}
    assert run.data.tags["best_overrides"] == "arm.lr=0.001"
    assert run.data.tags["failed_overrides"] == "arm.lr=0.5"


def test_two_learning_rates_are_two_variants_and_a_dvc_experiment_is_named(tmp_path,
                                                                          monkeypatch):
    """The saved view averages a variant over seeds: runs that differ in anything but the
    seed (a learning rate, which the name does not show) must not share one."""
    base = ("task=intent_sample", "model=tiny", "arm=full_finetune")
    slow, fast = (compose_config(tmp_path, *base, f"arm.lr={lr}") for lr in (1e-3, 3e-3))
    assert run_name(slow) == run_name(fast)
    assert job_tags(slow)["variant"] != job_tags(fast)["variant"]
    assert job_tags(slow)["variant"] == job_tags(compose_config(tmp_path, *base, "arm.lr=1e-3",
                                                                "seed=5"))["variant"]
    monkeypatch.setenv("DVC_EXP_NAME", "lora-r16")
    assert run_name(slow) == "full_finetune · tiny · lora-r16 · seed0"


def test_a_dvc_experiments_report_writes_into_its_own_study_parent_only(monkeypatch):
    """An experiment's report reads the baseline's runs of the stages it did not rerun; the
    baseline study's parent must keep the baseline's numbers."""
    from prompt_vs_finetune.report.mlflow_run import own_parents
    from prompt_vs_finetune.tracking.naming import study_group

    monkeypatch.setenv("DVC_STAGE", "report")
    monkeypatch.setenv("DVC_EXP_NAME", "lora-r16")
    mine = study_group("default").key
    parents = [{"run_id": "a", "group": mine}, {"run_id": "b", "group": "baseline-key"}]
    assert [p["run_id"] for p in own_parents(parents)] == ["a"]
    monkeypatch.delenv("DVC_STAGE")
    assert [p["run_id"] for p in own_parents(parents)] == ["a", "b"]  # a report by hand


def test_a_sigterm_while_the_run_opens_ends_it_killed(tmp_path, monkeypatch):
    """A preemption that lands between the run's creation and the job's body (a scheduler's
    SIGTERM right after the run shows RUNNING) still ends the run KILLED."""
    import os
    import signal

    from prompt_vs_finetune.errors import Preempted
    from prompt_vs_finetune.tracking import runs
    from prompt_vs_finetune.tracking.runs import mlflow_run, sigterm_as_preemption

    cfg = compose_config(tmp_path, "task=intent_sample", "model=tiny")
    monkeypatch.setattr(runs, "note_run",
                        lambda *_: os.kill(os.getpid(), signal.SIGTERM))  # the run exists now
    body = []
    with sigterm_as_preemption(), pytest.raises(Preempted):
        with mlflow_run(cfg.mlflow, job_record(cfg)):
            body.append("ran")
    assert not body
    client = MlflowClient(cfg.mlflow.tracking_uri)
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "KILLED" and "SIGTERM" in run.data.tags["stopped"]
