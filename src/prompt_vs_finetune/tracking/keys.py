"""Every metric and tag a job logs, what it means and which runs have it: the one list the job,
the tests and docs/tracking.md's tables (`python -m prompt_vs_finetune.tracking.keys`) follow."""

from ..metrics import BOTH, HOSTED, LOCAL, Key
from ..tasks import BUILT_IN, task_type

# the job <-> report contract: besides its keys and tags, each job run logs this file (each test
# example's quality, `values`, and prediction, in test-split order) for the report to resample
PER_EXAMPLE_FILE = "per_example.json"
# the tags that code other than the job's tagging reads (TAGS: what each means)
QUALITY_TAG = "quality_metric"
PARENT_TAG = "pvf.parent"
GROUP_TAG = "pvf.group"
PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow nests a run under the run this tag names
FIT = {"fitted_only": True}  # logged only by arms that train (arm.fit)
HYBRID = {"fitted_only": True, "optional": True}  # logged only by the hybrid arm

COMMON: dict[str, Key] = {
    # quality, on the test split
    "test/perplexity": Key("exp(mean negative log-likelihood per token) of the gold answer (label "
                           "or references) after the prompt: for models of one tokenizer", LOCAL),
    "test/bits_per_byte": Key("the same in bits per UTF-8 byte of the gold text: any model", LOCAL),
    # training
    "train/loss": Key("training loss per step (answer tokens only)", LOCAL, **FIT),
    "val/loss": Key("validation loss per epoch (answer tokens only)", LOCAL, **FIT),
    "epoch": Key("the epoch of each logged training step (Lightning's logger)", LOCAL, **FIT),
    "val/best_loss": Key("lowest validation loss (checkpoint=best)", LOCAL, optional=True, **FIT),
    "train/lr": Key("learning rate per logged step (warm-up, then linear decay)", LOCAL, **FIT),
    # the hybrid arm: a prompted teacher labels the pool the student trains on
    "hybrid/pool": Key("texts the teacher labelled (train, validation, less its demos)", **HYBRID),
    "hybrid/kept": Key("teacher labels the student kept (arm.keep: the most confident)", **HYBRID),
    "cost/teacher_usd": Key("the teacher's labels priced as predictions (in cost/usd)", **HYBRID),
    "cost/teacher_usd_cached": Key("the same, prefix-cached", **HYBRID),
    "cost/teacher_tokens": Key("tokens the teacher's labels were charged for", **HYBRID),
    "cost/teacher_seconds": Key("the teacher's wall time (cached: the original run's)", **HYBRID),
    # cost, the same quantity for every backend (docs/cost.md: the models)
    "cost/train_seconds": Key("wall time spent fitting (0 when the arm does not train)"),
    "cost/train_tokens": Key("tokens trained on, over all epochs"),
    "cost/train_usd": Key("what fitting cost, modelled from its FLOPs: load does not move it"),
    "cost/train_usd_measured": Key("the same from the wall time x usd_per_hour x devices: noisy"),
    "cost/trainable_params": Key("parameters the arm trains (0 when it does not train)"),
    "cost/eval_seconds": Key("wall time to produce every test prediction (batched, or concurrent)"),
    "cost/eval_tokens": Key("tokens read for the predictions: prompts, demos, ranked labels "
                            "(hosted: input tokens)"),
    "cost/generated_tokens": Key("tokens the model wrote (hosted models: output tokens)"),
    "cost/eval_only_tokens": Key("tokens run for evaluation only (reference perplexity, "
                                 "calibration inputs): in no prediction's cost"),
    "cost/usd": Key("what the run cost: train_usd, its predictions, labels_usd (and teacher_usd)"),
    "cost/labels_usd": Key("its labels' price, up front: data/n_labels x cost.usd_per_label"),
    "cost/usd_per_1k_predictions": Key("what 1,000 predictions cost, each its own tokens"),
    "cost/usd_per_1k_predictions_cached": Key("the same, the demos paid once (a prefix cache)"),
    "cost/usd_per_1k_predictions_measured": Key("the same from the wall time (hosted: billed)"),
    "cost/tokens_per_prediction": Key("tokens one prediction is charged for"),
    "cost/latency_ms_per_example": Key("eval_seconds per test example, in ms (the run's "
                                       "throughput, not one call's latency)"),
    "cost/flops": Key("estimated FLOPs: 2N a token run, 4N + 2N_trainable a token trained", LOCAL),
    "cost/peak_memory_mb": Key("peak CUDA, else resident memory (warm_start: ~100 MB less)", LOCAL),
    "cost/model_memory_mb": Key("the weights' memory as scored (inference_dtype)", LOCAL),
    "cost/total_params": Key("all parameters of the model, tied weights once", LOCAL),
    "cost/devices": Key("devices paid for (DDP: every rank)", LOCAL),
    # data
    "data/n_labels": Key("labelled examples the arm touched, within train_size: train and "
                         "validation if it trains or chooses on validation, else its demos"),
    "data/n_train": Key("training examples (the label budget less validation)"),
    "data/n_validation": Key("validation examples (val_fraction of the label budget)"),
    "data/test_overlap": Key("test examples whose normalised text is also labelled (task.overlap)"),
    "data/n_test": Key("test examples scored"),
    "data/truncated_inputs": Key("test inputs cut to fit the context (hosted: none)"),
    "data/dropped_empty_rows": Key("rows dropped from the data for empty text or no answer"),
    "data/duplicate_rows": Key("labelled rows repeating an earlier one (counted in n_labels)"),
    "fewshot/demos_used": Key("demonstrations in every prompt"),
    "fewshot/demos_dropped": Key("demonstrations drawn but dropped for want of context"),
    # hosted models only
    "api/cache_hits": Key("replies served from the disk cache (not paid again)", HOSTED),
    "api/retries": Key("requests the SDK retried (rate limits, server errors)", HOSTED),
    "api/usd_billed": Key("what this run paid the provider: cost/usd less the cache hits", HOSTED),
    "api/request_latency_ms": Key("mean latency of one request, in ms", HOSTED),
    "system/*": Key("CPU, memory, disk, network, GPU use every 5 s (mlflow.system_metrics)",
                    optional=True),
    # a sweep's parent run (tracking/sweep.py)
    "sweep/jobs": Key("jobs the sweep ran", run="parent"),
    "sweep/jobs_finished": Key("jobs whose run finished", run="parent"),
    "sweep/jobs_failed": Key("jobs that failed (tag failed_overrides)", run="parent"),
    "sweep/best_objective": Key("an optimising sweeper's best (tag best_overrides)", run="parent",
                                optional=True),
}

# every task type's keys besides: what the tables list, each once
KEYS: dict[str, Key] = {**COMMON, **{name: key for kind in BUILT_IN
                                     for name, key in task_type(kind).keys.items()}}

# Tags: what a run is, to filter and group by
TAGS: dict[str, str] = {
    "arm": "the arm (zero_shot, few_shot, full_finetune, lora)",
    "fit": "whether the arm trains weights (arm.fit), which the report reads, not arm names",
    "task": "the task", "model": "the model", "seed": "the seed",
    "train_size": "the label budget (None: all)", "k": "demonstrations in the prompt",
    "prompt": "the task's template name (task.prompt)",
    QUALITY_TAG: "the task type's headline metric (test/accuracy, ...), which ranks the arms",
    "chat": "whether the prompt was laid out with the model's chat template (prompt.chat)",
    "variant": "the run name less its seed, ` #` and its cell's first 8 characters: what the "
               "saved view 'pvf: mean over seeds' averages over",
    "cell": "hash of the config less its seeds: runs with one cell are one experiment",
    "config_hash": "hash of the composed config (the resume key)",
    "pvf.code": "hash of pvf's source files: with config_hash and the data's, a rerun's identity",
    "pretrained": "false for random weights (model.tiny): its prompting arms are at chance",
    "config_source": "the folder Hydra composed the config from (config_searchpath: others)",
    "overrides": "the job's command-line overrides, redacted",
    "calibration": "how test/accuracy ranked labels (local classification): none, contextual, pmi",
    "checkpoint": "the weights a fit scored: best (validation loss) or last (a fixed schedule: "
                  "validation smaller than arm.min_validation)",
    "inference_dtype": "the dtype the test is scored in (local models)",
    "study": "the study (study=...; the DVC pipelines set it)",
    "hpo_trial": "a trial of a hyper-parameter search (its test metrics are not the experiment's)",
    "git_commit": "HEAD of the working directory's repository",
    "git_dirty": "tracked code differs from git_commit; not counted: conf/**/*.yaml and "
                 "pipelines/*/study.yaml (the run's params), dvc.lock, the DVC stages' outputs",
    "git_ignored_changes": "the changed files git_dirty did not count",
    "dvc_stage": "the DVC stage that ran the job (dvc repro, dvc exp run)",
    "dvc_exp": "the DVC experiment's name (dvc exp run)",
    "dvc_baseline_rev": "the commit the DVC experiment started from",
    "warm_start": "the job ran forked from a warm worker (under DVC, or PVF_WARM=1)",
    GROUP_TAG: "the sweep or study the run belongs to (its parent run has the same)",
    PARENT_RUN_TAG: "the parent run: the sweep's or study's, one per experiment",
    "resumed": "how many times the run was resumed after a crash, a failure or a preemption",
    "resumed_after": "what stopped the attempt the latest resume continued (error, or SIGTERM)",
    "error": "the error a FAILED run ended with (traceback.txt: the traceback); an abandoned "
             "attempt's reason (a changed dataset or code, resume=false)",
    "stopped": "a KILLED run stopped by SIGTERM (a preemption): the same command resumes it",
    "api_model": "the hosted model's name at the provider",
    "predictions_cached": "the predictions came from the prediction cache: an earlier run's "
                          "with the same model, prompt, demos, test set and scoring",
    "predictions_from_run": "the run that made the cached predictions (cost/eval_seconds: its)",
    "teacher_cached": "hybrid arm: the teacher's labels came from a cache (an earlier run paid)",
    "perplexity": "why test/perplexity is absent (hosted models)",
    PARENT_TAG: "true on a sweep's or study's parent run (pvf.kind: sweep or study)",
}


def markdown_tables() -> str:
    """docs/tracking.md's tables of keys and of tags."""
    def who(name: str, key: Key) -> str:
        if key.run == "parent":
            return "a sweep's parent run"
        side = {BOTH: "both", LOCAL: "local models", HOSTED: "hosted models"}[key.backends]
        owner = next((kind for kind in BUILT_IN if name in task_type(kind).keys), None)
        extra = [*([owner] if owner else []), *(["arms that train"] if key.fitted_only else [])]
        return side + (f" ({', '.join(extra)})" if extra else "")

    return "\n".join([
        "| key | what it is | logged by |", "|---|---|---|",
        *(f"| `{name}` | {key.meaning} | {who(name, key)} |" for name, key in KEYS.items()), "",
        "| tag | what it is |", "|---|---|",
        *(f"| `{name}` | {meaning} |" for name, meaning in TAGS.items())])


if __name__ == "__main__":
    print(markdown_tables())
