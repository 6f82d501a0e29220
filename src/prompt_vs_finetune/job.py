"""One job: one arm of one model on one task, recorded as one MLflow run: check the config ->
splits -> demos -> predict (the backend: predictions and what they took) -> metrics -> log."""

import hashlib
import json
import logging
import math
from pathlib import Path

import mlflow
from omegaconf import DictConfig

from .backends import Predictions, backend_for, build
from .config import check_config, check_writable, fill_inherited, seed_or
from .errors import Preempted, UserError
from .metrics.cost import cost_metrics
from .tasks import Task, classes_covered, content_hash, job_splits, labelled_rows, select_demos
from .tracking.keys import PER_EXAMPLE_FILE
from .tracking.naming import job_record, run_address
from .tracking.runs import is_rank_zero, mlflow_run, sigterm_as_preemption
from .tracking.store import log_datasets

log = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")


def run(cfg: DictConfig) -> dict[str, float]:
    """Check, load the data and build the backend (bad input fails before any run exists),
    then predict, score and log inside the job's MLflow run."""
    fill_inherited(cfg)
    backend_for(cfg).check(cfg)  # first: "this backend cannot train" beats "arm.lr is unset"
    check_config(cfg)
    check_writable(cfg.paths.output_dir, cfg.results_file)
    task, splits, dropped_rows, corpus = job_splits(cfg.task, cfg.data_dir, cfg.train_size,
                                                   cfg.test_size, cfg.data_seed)
    demos = select_demos(splits["train"], cfg.arm.k, cfg.arm.selection, cfg.seed,
                         seed_or(cfg.arm.order_seed, cfg.seed))
    backend = build(cfg)
    # a hybrid's teacher labels the splits here; `shown`: the demos with human labels
    splits, shown = backend.prepare(task, splits, corpus, demos)
    overlap, repeats = repeated_rows(splits, shown, cfg.task.overlap)
    hashes = {name: content_hash(splits[name]) for name in SPLITS}
    hashes["demos"] = content_hash(shown)
    with sigterm_as_preemption():  # from here on, SIGTERM stops the job as a preemption
        backend.load(task, splits, corpus, demos, "".join(hashes[k] for k in SPLITS))
        outcome = "failed"
        try:
            named = job_record(cfg) if is_rank_zero() else None  # ranks > 0 log nothing
            with mlflow_run(cfg.mlflow, named, backend.resume_run_id) as active:
                if active is not None and not backend.resume_run_id:
                    # two runs saw the same data iff these match
                    mlflow.log_params({f"data.{name}_sha256": hashes[name] for name in SPLITS}
                                      | {"fewshot.demos_sha256": hashes["demos"]}
                                      | label_params(task))
                    log_datasets(cfg.task, cfg.data_dir, cfg.arm.fit, splits, shown, hashes)
                predictions = backend.predict(active)
                quality, each = task.kind.score(task, predictions.rows)
                results = significant(job_results(
                    cfg.arm.fit, task, splits, (dropped_rows, overlap, repeats), predictions,
                    quality, shown, cfg.cost.usd_per_label))
                if active is not None:  # DDP ranks above 0 log nothing
                    record(task, splits["test"]["text"], predictions, results,
                           f"{task.name} / {cfg.arm.name} / {cfg.model.name}",
                           {"metric": task.kind.per_example,
                            "test_sha256": hashes["test"], "values": each,
                            "predictions": [row.get("predicted", row.get("generated"))
                                            for row in predictions.rows]},
                           cfg.results_file, cfg.mlflow)
            outcome = "finished"
            return results
        except (Preempted, KeyboardInterrupt) as stop:
            outcome = "preempted" if isinstance(stop, Preempted) else "interrupted"
            raise
        finally:
            backend.close(outcome)


def label_params(task: Task) -> dict[str, str]:
    """The label set as two params: how many, and a hash of the label -> verbalization map."""
    mapping = json.dumps(task.labels, sort_keys=True).encode()
    return {"task.n_labels": str(len(task.labels)),
            "task.labels_hash": hashlib.sha256(mapping).hexdigest()[:16]} if task.labels else {}


def job_results(fit: bool, task: Task, splits, counted: tuple[int, int, int],
                predictions: Predictions, quality: dict[str, float], shown: list[dict],
                usd_per_label: float) -> dict[str, float]:
    """Every metric of the run (tracking/keys.py); `counted`: rows dropped, test rows among the
    labelled, labelled rows repeated. Labels counted: the whole budget if the arm trains or
    chooses on validation (its demos come from train), else only its demos."""
    dropped_rows, overlap, repeats = counted
    rows = (labelled_rows(splits) if fit or predictions.validation
            else shown[:predictions.demos_used])
    labelled = len(rows)
    if predictions.n_labels is not None:  # a hybrid: its labels are the teacher's
        labelled, rows = predictions.n_labels, shown
    if predictions.validation:  # what a search over configurations chooses on
        _, on_validation = task.kind.score(task, predictions.validation)
        headline = task.kind.quality.split("/", 1)[1]
        quality = quality | {f"val/{headline}": sum(on_validation) / len(on_validation)}
    costs = cost_metrics(predictions.usage, predictions.upfront_usd, labelled * usd_per_label)
    return {
        **quality, **costs, **predictions.metrics,
        "data/n_train": len(splits["train"]), "data/n_validation": len(splits["validation"]),
        "data/n_test": len(splits["test"]), "data/truncated_inputs": predictions.truncated_inputs,
        "data/dropped_empty_rows": dropped_rows, "data/test_overlap": overlap,
        "data/duplicate_rows": repeats, "data/n_labels": labelled,
        "fewshot/demos_used": predictions.demos_used,
        "fewshot/demos_dropped": predictions.demos_dropped,
        **({"data/n_classes": len(task.labels), "data/classes_covered": classes_covered(rows),
            "data/test_unseen_labels": unseen_labels(rows, splits["test"], fit)}
           if task.labels else {}),
    }


def unseen_labels(labelled: list[dict], test, fit: bool) -> int:
    """Test examples whose gold label no labelled example has (warned where the arm fits)."""
    seen = {row["label"] for row in labelled}
    unseen = sum(label not in seen for label in test["label"][:])
    if unseen and fit:
        log.warning("%d of %d test examples have a label no labelled example has: the fit never "
                    "saw it (data/test_unseen_labels); raise train_size to cover every class",
                    unseen, len(test))
    return unseen


def significant(results: dict[str, float]) -> dict[str, float]:
    """Every fraction to 4 significant digits (all a test set resolves), counts as they are."""
    return {key: value if float(value).is_integer() or not math.isfinite(value)
            else float(f"{value:.4g}") for key, value in results.items()}


def record(task: Task, test_texts: list[str], predictions: Predictions,
           results: dict[str, float], title: str, per_example: dict, results_file: str | None,
           mlflow_cfg) -> None:
    """Metrics, tags, predictions and `per_example` (for the report's intervals) into the active
    run, and into `results_file` (for DVC and pvf-report --runs-from)."""
    mlflow.log_metrics(results)
    if predictions.tags:
        mlflow.set_tags(predictions.tags)
    task.kind.log_predictions(task, test_texts, predictions.rows, f"{title} (N={len(test_texts)})")
    mlflow.log_dict(per_example, PER_EXAMPLE_FILE)
    active = mlflow.active_run().info
    if results_file:
        data = mlflow.get_run(active.run_id).data
        run = {"info": {key: getattr(active, key) for key in (
                   "run_id", "experiment_id", "start_time", "artifact_uri")},
               "data": {"params": data.params, "tags": data.tags, "metrics": {
                   k: v for k, v in data.metrics.items() if not k.startswith("system/")}}}
        Path(results_file).parent.mkdir(parents=True, exist_ok=True)
        Path(results_file).write_text(json.dumps({"run_id": active.run_id, **results, "run": run,
                                                  "per_example": per_example}, indent=1))
    log.info("run %s: %s", active.run_id,
             ", ".join(f"{k}={v:.4g}" for k, v in results.items() if k.startswith("test/")))
    log.info("%s", run_address(mlflow_cfg.tracking_uri, mlflow_cfg.experiment_name,
                               active.experiment_id, active.run_id))


def repeated_rows(splits, demos: list[dict], policy: str) -> tuple[int, int]:
    """(test examples whose text, case and spacing normalised, is also a labelled example's;
    labelled rows that repeat an earlier one, text and answer: they count in n_labels)."""
    labelled = labelled_rows(splits)
    seen = {_normal(row["text"]) for row in [*labelled, *demos]}
    overlap = sum(_normal(text) in seen for text in splits["test"]["text"][:])
    if overlap and policy == "error":
        raise UserError(f"{overlap} of {len(splits['test'])} test examples also appear among "
                        "the labelled examples (train, validation or demos); point the task "
                        "at disjoint files, or set task.overlap=warn to run anyway")
    if overlap:
        log.warning("%d of %d test examples also appear among the labelled examples: their "
                    "score is not held-out (data/test_overlap)", overlap, len(splits["test"]))
    keys = [json.dumps([row["text"], row.get("label", row.get("references"))]) for row in labelled]
    if repeats := len(keys) - len(set(keys)):
        log.warning("%d labelled row(s) repeat an earlier one (same text and answer); they "
                    "count in the label budget (data/duplicate_rows): deduplicate the data "
                    "for a budget of distinct examples", repeats)
    return overlap, repeats


def _normal(text: str) -> str:
    return " ".join(text.casefold().split())
