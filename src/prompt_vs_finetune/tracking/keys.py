"""Every metric and tag a job logs, what it means, and which runs have it: the one list the
job, the tests and docs/tracking.md's tables (`python -m prompt_vs_finetune.tracking.keys`)
are held against."""

from ..metrics import BOTH, HOSTED, LOCAL, Key
from ..tasks import BUILT_IN, task_type

# The job <-> report contract: besides the keys and tags below, each job run logs this file
# (each test example's quality, `values`, and prediction, in test-split order), which the
# report resamples for its intervals and paired comparisons.
PER_EXAMPLE_FILE = "per_example.json"
# the tags that code other than the job's tagging reads (TAGS: what each means)
QUALITY_TAG = "quality_metric"  # the task type's headline metric, as the job tagged it
PARENT_TAG = "pvf.parent"  # "true" on a sweep's or study's parent run
GROUP_TAG = "pvf.group"  # the group key, on the parent and on its job runs
PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow nests a run under the run this tag names

COMMON: dict[str, Key] = {
    # quality, on the test split
    "test/perplexity": Key("exp of the mean negative log-likelihood per token of the gold "
                           "answer (classification: the gold label; generation: the "
                           "references) given the prompt; comparable only between models "
                           "with the same tokenizer", LOCAL),
    "test/bits_per_byte": Key("the same log-likelihood in bits per UTF-8 byte of the gold text: "
                              "tokenizer-independent, for comparing models", LOCAL),
    # training
    "train/loss": Key("training loss per step (answer tokens only)", LOCAL, fitted_only=True),
    "val/loss": Key("validation loss per epoch (answer tokens only)", LOCAL, fitted_only=True),
    "epoch": Key("the epoch of each logged training step (Lightning's logger)", LOCAL,
                  fitted_only=True),
    "val/best_loss": Key("lowest validation loss: the checkpoint that is scored (none with a "
                         "fixed schedule: tag checkpoint=last)", LOCAL, fitted_only=True,
                         optional=True),
    "train/lr": Key("learning rate of each logged training step (warm-up, then linear "
                    "decay)", LOCAL, fitted_only=True),
    # the hybrid arm: a prompted teacher labels the pool the student trains on
    "hybrid/pool": Key("texts the teacher labelled (train and validation, less its demos)",
                       optional=True, fitted_only=True),
    "hybrid/kept": Key("teacher labels kept for the student (arm.keep: the most confident)",
                       optional=True, fitted_only=True),
    "cost/teacher_usd": Key("what the teacher's labels cost (its predictions, priced as any "
                            "prediction); up-front, like training, and part of cost/usd",
                            optional=True, fitted_only=True),
    "cost/teacher_usd_cached": Key("the same, prefix-cached", optional=True, fitted_only=True),
    "cost/teacher_tokens": Key("tokens the teacher's labels were charged for", optional=True,
                               fitted_only=True),
    "cost/teacher_seconds": Key("wall time the teacher took to label the pool (a local "
                                "teacher served from the prediction cache logs the "
                                "original's; tag teacher_cached)", optional=True, fitted_only=True),
    # cost: the same quantity for every backend
    "cost/train_seconds": Key("wall time spent fitting (0 when the arm does not train)"),
    "cost/train_tokens": Key("tokens trained on, over all epochs"),
    "cost/train_usd": Key("what fitting cost, modelled like a prediction: trained tokens x "
                          "(4N + 2N_trainable) FLOPs at cost.train_flops_per_second, plus the "
                          "validation passes (2N a token) at cost.prompt_flops_per_second, x "
                          "usd_per_hour; machine load does not move it"),
    "cost/train_usd_measured": Key("the same from the measured wall time (train_seconds x "
                                   "usd_per_hour x devices): noisy, it moves with load"),
    "cost/trainable_params": Key("parameters the arm trains (0 when it does not train)"),
    "cost/eval_seconds": Key("wall time to produce every test prediction (batched, or "
                             "concurrent requests)"),
    "cost/eval_tokens": Key("tokens read to produce the predictions: prompts with their demos "
                            "(and, ranked, the labels), as run; a hosted model's input tokens"),
    "cost/generated_tokens": Key("tokens the model wrote (generation; hosted models: output "
                                 "tokens)"),
    "cost/eval_only_tokens": Key("tokens run for evaluation only (the references' perplexity, the "
                                 "calibration inputs); part of no prediction's cost"),
    "cost/usd": Key("what the run cost: train_usd plus its predictions at "
                    "usd_per_1k_predictions, labels_usd (plus teacher_usd: the hybrid arm)"),
    "cost/labels_usd": Key("its labels' price, up front: data/n_labels x cost.usd_per_label"),
    "cost/usd_per_1k_predictions": Key("what 1,000 predictions cost a deployment, each "
                                       "charged its own tokens (the prompt with its demos, the "
                                       "labels ranked or tokens written): local, tokens x 2N "
                                       "FLOPs at conf/cost's FLOP/s x usd_per_hour; hosted, "
                                       "usage x token prices"),
    "cost/usd_per_1k_predictions_cached": Key("the same, the demos paid once (a prefix cache)"),
    "cost/usd_per_1k_predictions_measured": Key("the same from the measured wall time x "
                                                "usd_per_hour (hosted: as billed); noisy, "
                                                "and it credits batching and prefix caching"),
    "cost/tokens_per_prediction": Key("tokens one prediction is charged for"),
    "cost/latency_ms_per_example": Key("eval_seconds / test examples, in ms (throughput of "
                                       "the batched or concurrent run, not one call's latency)"),
    "cost/flops": Key("estimated FLOPs: 2N per token run forward, 4N + 2N_trainable per token "
                      "trained (N: all parameters)", LOCAL),
    "cost/peak_memory_mb": Key("peak CUDA memory allocated, or the process's peak resident "
                               "memory on CPU (a warm_start run's leaves out its worker's "
                               "import-time peak: about 100 MB less)", LOCAL),
    "cost/model_memory_mb": Key("the weights' memory as scored (inference_dtype)", LOCAL),
    "cost/total_params": Key("all parameters of the model, tied weights once", LOCAL),
    "cost/devices": Key("devices paid for (DDP: every rank)", LOCAL),
    # data
    "data/n_labels": Key("labelled examples the arm touched, all within train_size: train "
                         "and validation when it trains or, given train_size, prompts (its "
                         "demos come from train, validation chooses); else its demonstrations"),
    "data/n_train": Key("training examples (the label budget less validation)"),
    "data/n_validation": Key("validation examples (val_fraction of the label budget)"),
    "data/test_overlap": Key("test examples whose normalised text is also among the labelled "
                             "examples (task.overlap=error refuses to run)"),
    "data/n_test": Key("test examples scored"),
    "data/truncated_inputs": Key("test inputs cut to fit the context (hosted: none)"),
    "data/dropped_empty_rows": Key("rows dropped from the data for empty text or no answer"),
    "data/duplicate_rows": Key("labelled rows that repeat an earlier one (text and answer); "
                               "they count in data/n_labels"),
    "fewshot/demos_used": Key("demonstrations in every prompt"),
    "fewshot/demos_dropped": Key("demonstrations drawn but dropped for want of context"),
    # hosted models only
    "api/cache_hits": Key("replies served from the disk cache (not paid again)", HOSTED),
    "api/retries": Key("requests the SDK retried (rate limits, server errors)", HOSTED),
    "api/usd_billed": Key("what this run paid the provider: cost/usd less the cache hits", HOSTED),
    "api/request_latency_ms": Key("mean latency of one request, in ms", HOSTED),
    # the machine, sampled by MLflow while the run is open
    "system/*": Key("CPU, memory, disk, network (and GPU) use every 5 s (MLflow's system metrics: "
                    "mlflow.system_metrics); a run shorter than that has none", optional=True),
    # a sweep's parent run (tracking/sweep.py)
    "sweep/jobs": Key("jobs the sweep ran", run="parent"),
    "sweep/jobs_finished": Key("jobs whose run finished", run="parent"),
    "sweep/jobs_failed": Key("jobs that failed (tag failed_overrides: their overrides)",
                             run="parent"),
    "sweep/best_objective": Key("an optimising sweeper's best objective (tag best_overrides: "
                                "its parameters)", run="parent", optional=True),
}

# every task type's keys besides: what the tables list, each once
KEYS: dict[str, Key] = {**COMMON, **{name: key for kind in BUILT_IN
                                     for name, key in task_type(kind).keys.items()}}

# Tags: what a run is, to filter and group by (the report reads arm, fit, task, model, seed,
# cell, hpo_trial, study, inference_dtype and mlflow.parentRunId).
TAGS: dict[str, str] = {
    "arm": "the arm (zero_shot, few_shot, full_finetune, lora)",
    "fit": "whether the arm trains weights (the arm config's `fit`), which the report reads "
           "instead of arm names",
    "task": "the task", "model": "the model", "seed": "the seed",
    "train_size": "the label budget (None: all)", "k": "demonstrations in the prompt",
    "prompt": "the task's template name (task.prompt)",
    QUALITY_TAG: "the task type's headline metric, which the report ranks arms by "
                      "(test/accuracy, test/rougeL, or a task type's own)",
    "chat": "whether the prompt was laid out with the model's chat template (prompt.chat)",
    "variant": "the run name less its seed, and its cell's first 8 characters: the saved view "
               "'pvf: mean over seeds' averages the runs of one variant",
    "cell": "hash of the config less its seeds: runs with one cell are one experiment",
    "config_hash": "hash of the composed config (the resume key)",
    "pvf.code": "hash of pvf's source files: with config_hash and the data hashes, what makes "
                "a rerun identical (the report counts it once)",
    "pretrained": "false for random weights (model.tiny): the report says its prompting arms "
                  "are at chance by construction",
    "config_source": "the folder Hydra composed the config from (config_searchpath: the ones "
                     "searched after it)",
    "overrides": "the job's command-line overrides, redacted",
    "calibration": "how test/accuracy ranked the labels: none (scorer.length_norm), contextual "
                   "or pmi (local classification)",
    "checkpoint": "the weights a fit scored: best (on validation loss) or last (a fixed "
                  "schedule: validation smaller than arm.min_validation)",
    "inference_dtype": "the dtype the test is scored in (local models)",
    "study": "the study (study=...; the DVC pipelines set it)",
    "hpo_trial": "a trial of a hyper-parameter search (its test metrics are not the experiment's)",
    "git_commit": "HEAD of the working directory's repository",
    "git_dirty": "tracked code differs from git_commit: changes to conf/**/*.yaml and "
                 "pipelines/*/study.yaml (their values are the run's params; dvc exp run -S "
                 "edits them), dvc.lock and, under DVC, the stages' outputs do not count",
    "git_ignored_changes": "the changed files git_dirty did not count",
    "dvc_stage": "the DVC stage that ran the job (dvc repro, dvc exp run)",
    "dvc_exp": "the DVC experiment's name (dvc exp run)",
    "dvc_baseline_rev": "the commit the DVC experiment started from",
    "warm_start": "the job ran in a child forked from a warm worker that had imported pvf's "
                  "libraries (under DVC, or PVF_WARM=1): its process start-up was skipped",
    GROUP_TAG: "the sweep or study the run belongs to (its parent run has the same)",
    PARENT_RUN_TAG: "the parent run: the sweep's or study's, one per experiment",
    "resumed": "how many times the run was resumed after a crash, a failure or a preemption",
    "resumed_after": "what stopped the attempt the latest resume continued (its error, or "
                     "SIGTERM)",
    "error": "the error a FAILED run ended with (traceback.txt: the traceback); an abandoned "
             "attempt's reason (a changed dataset or code, resume=false)",
    "stopped": "a KILLED run stopped by SIGTERM (a preemption): the same command resumes it",
    "api_model": "the hosted model's name at the provider",
    "predictions_cached": "the predictions came from the prediction cache: an earlier run with "
                          "the same model, prompt, demos, test set and scoring made them "
                          "(cost/eval_seconds is that run's)",
    "predictions_from_run": "the run that made the cached predictions",
    "teacher_cached": "hybrid arm: the teacher's labels came from the caches (the prediction "
                      "cache, or a hosted teacher's reply cache: paid by an earlier run with "
                      "the same teacher and pool)",
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
