"""One job: one arm of one model on one task, recorded as one MLflow run."""

import hashlib
import json
import logging
import tempfile
from pathlib import Path

import lightning as L
import mlflow
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig

from .cost import CostMeter
from .data import TaskDataModule
from .errors import UserError
from .models import apply_lora, context_length, count_parameters, load_model
from .module import ArmModule
from .precision import check_inference_dtype
from .prompts import PromptEncoder, select_demos
from .resume import ResumeState
from .scorers import RankClassifier, Summarizer
from .scoring import takes_cache
from .task import DROPPED, Task, limit_splits, load_prepared, load_splits
from .tracking import is_rank_zero, lightning_logger, mlflow_run

log = logging.getLogger(__name__)

FIT_ONLY_CALLBACKS = (ModelCheckpoint, EarlyStopping)


def run(cfg: DictConfig) -> dict[str, float]:
    """Prepare data and model (bad input fails here, before any run exists), then fit if the
    arm trains, score the test split, and log metrics, cost and artifacts to MLflow."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    check_job(cfg)
    task = Task.from_config(cfg.task)
    if cfg.model.get("api"):  # a hosted model: no weights, no Lightning
        from .api_run import run_api

        return run_api(cfg, task)
    splits, dropped_rows, corpus = job_splits(cfg, task)

    model, tokenizer = load_model(cfg.model, cfg.paths.cache_dir, corpus)
    if cfg.arm.fit and cfg.arm.get("pack_length") and not takes_cache(model):
        raise UserError(f"arm.pack_length needs 4D attention masks, which {cfg.model.name} "
                        "does not take; drop arm.pack_length (length grouping still applies)")
    if cfg.arm.fit and cfg.arm.get("lora"):
        model = apply_lora(model, cfg.arm.lora)
    total_params, trainable_params = count_parameters(model)
    max_length = context_length(model, cfg.model.get("max_length"))
    generation = task.type == "generation"
    encoder = PromptEncoder(tokenizer, task, max_length,
                            answer_room=cfg.decoding.max_new_tokens if generation else None)
    demos = select_demos(splits["train"], cfg.arm.k, cfg.arm.selection, cfg.seed,
                         cfg.arm.get("order_seed"))
    dropped = encoder.set_demos(demos, demo_room_prompt(encoder, task, splits["test"]["text"]))
    scorer = (Summarizer(encoder, cfg.decoding, score_batch_size=cfg.scorer.batch_size)
              if generation else
              RankClassifier(encoder, length_norm=cfg.scorer.length_norm,
                             batch_size=cfg.scorer.batch_size,
                             examples_per_batch=cfg.scorer.examples_per_batch,
                             share_prefix=cfg.scorer.share_prefix,
                             max_batch_tokens=cfg.scorer.get("max_batch_tokens")))
    datamodule = TaskDataModule(splits, encoder, scorer, batch_size=cfg.arm.get("batch_size", 16),
                                group_by_length=cfg.arm.get("group_by_length", True),
                                seed=cfg.seed, pack_length=cfg.arm.get("pack_length"))
    module = ArmModule(model, scorer, lr=cfg.arm.get("lr", 0.0),
                       weight_decay=cfg.arm.get("weight_decay", 0.0),
                       warmup_ratio=cfg.arm.get("warmup_ratio", 0.0),
                       compile=bool(cfg.get("compile", False)),
                       inference_dtype=cfg.get("inference_dtype", "float32"))

    state = ResumeState.for_job(cfg)
    previous = state.previous() if state else None
    try:
        with mlflow_run(cfg, resume_run_id=previous and previous["run_id"]) as active:
            return _fit_and_score(cfg, active, state, previous, task, splits, encoder, scorer,
                                  datamodule, module, demos, dropped, total_params,
                                  trainable_params, dropped_rows)
    finally:  # a job that ends, however, leaves no state; a killed one (SIGKILL) does
        if state and is_rank_zero():
            state.clear()


def _fit_and_score(cfg, active, state, previous, task, splits, encoder, scorer, datamodule,
                   module, demos, dropped, total_params, trainable_params,
                   dropped_rows) -> dict[str, float]:
    """Inside the job's MLflow run: fit (or resume fitting) if the arm trains, score, log."""
    if active is not None and not previous:  # two runs saw the same data iff these match
        mlflow.log_params({f"data.{name}_sha256": content_hash(splits[name])
                           for name in ("train", "validation", "test")}
                          | {"fewshot.demos_sha256": content_hash(demos)})
    meter = CostMeter()
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    if not cfg.arm.fit:
        callbacks = [c for c in callbacks if not isinstance(c, FIT_ONLY_CALLBACKS)]
    output_dir = previous["output_dir"] if previous else cfg.paths.output_dir
    if previous:  # the best-so-far checkpoint lives in the first attempt's folder
        for c in callbacks:
            if isinstance(c, ModelCheckpoint):
                c.dirpath = str(Path(output_dir) / "checkpoints")
    if state:
        callbacks.append(state.callback(int(cfg.resume_every_n_steps)))
        if active is not None and not previous:
            state.start(active.info.run_id, str(cfg.paths.output_dir))
    trainer = instantiate(cfg.trainer, callbacks=[meter, *callbacks],
                          logger=lightning_logger(active, cfg),
                          default_root_dir=cfg.paths.output_dir)
    try:
        ckpt_path = None
        if cfg.arm.fit:
            resume_from = state.checkpoint if previous else None
            if resume_from:
                log.info("resuming %s from %s", active and active.info.run_id, resume_from)
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
            if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path:
                ckpt_path = "best"
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    except SystemExit:
        if trainer.interrupted:  # Lightning turns Ctrl-C into sys.exit(1): the run is KILLED
            raise KeyboardInterrupt from None
        raise

    results = {k: float(v) for k, v in trainer.callback_metrics.items()
               if k.startswith("test/")}
    if ckpt_path:
        results["val/best_loss"] = float(trainer.checkpoint_callback.best_model_score)
    results.update(meter.summary(
        n_predictions=len(splits["test"]), total_params=total_params,
        trainable_params=trainable_params, usd_per_hour=cfg.cost.usd_per_hour,
        device=trainer.strategy.root_device, fitted=bool(cfg.arm.fit)))
    results["cost/model_memory_mb"] = module.weight_memory_mb  # weights as scored (dtype)
    results.update({
        "data/n_train": len(splits["train"]), "data/n_validation": len(splits["validation"]),
        "data/n_test": len(splits["test"]), "data/truncated_inputs": encoder.truncated,
        "fewshot/demos_used": encoder.demos_used, "fewshot/demos_dropped": dropped,
        "data/dropped_empty_rows": dropped_rows,
    })
    if active is None:  # a DDP rank > 0: rank 0 logs the job
        return results
    mlflow.log_metrics({k: v for k, v in results.items() if not k.startswith("test/")})
    scorer.log_artifacts(
        splits["test"], module.predictions,
        title=f"{task.name} / {cfg.arm.name} / {cfg.model.name} (N={len(splits['test'])})")
    write_results_file(cfg, active.info.run_id, results)
    log.info("run %s: %s", active.info.run_id,
             ", ".join(f"{k}={v:.4g}" for k, v in results.items() if k.startswith("test/")))
    return results


def job_splits(cfg: DictConfig, task: Task):
    """(splits limited to train_size / test_size, empty rows dropped, tokenizer corpus)."""
    splits = (load_prepared(Path(cfg.data_dir)) if cfg.get("data_dir")
              else load_splits(cfg.task, cfg.seed))
    dropped_rows = sum(DROPPED.values()) if not cfg.get("data_dir") else 0
    corpus = _tokenizer_corpus(task, splits)
    return limit_splits(splits, cfg.train_size, cfg.test_size, cfg.seed), dropped_rows, corpus


def write_results_file(cfg: DictConfig, run_id: str, results: dict[str, float]) -> None:
    """The run's metrics (and run id) as JSON where `results_file` says, for DVC."""
    if cfg.get("results_file"):
        path = Path(cfg.results_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"run_id": run_id, **results}, indent=2))


def demo_room_prompt(encoder: PromptEncoder, task: Task, texts: list[str]) -> int:
    """The prompt length the few-shot demos must leave room for: the 95th percentile of the
    test prompts, so one very long input (a 900-token dialogue) does not cost every example
    its demos; the few longer prompts have their text cut to fit (data/truncated_inputs)."""
    lengths = sorted(len(encoder.encode(task.prompt(t))) for t in texts)
    return lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))]


def check_job(cfg: DictConfig) -> None:
    """Settings that would fail late (or silently) fail here, before any work."""
    if cfg.arm.fit and cfg.model.get("api"):
        raise UserError(f"arm={cfg.arm.name} trains weights, and model={cfg.model.name} is a "
                        "hosted API model without any; use arm=zero_shot or arm=few_shot, or a "
                        "local model (model=gpt2)")
    if cfg.model.get("api"):  # no data loaded, no run opened, if the key or a price is missing
        from .api_models import api_key, token_prices

        if cfg.get("inference_dtype", "float32") != "float32":
            raise UserError(f"inference_dtype={cfg.inference_dtype} applies to local weights; "
                            f"model={cfg.model.name} runs at its provider's precision: drop it")
        api_key(cfg.model.api)
        token_prices(cfg.cost, cfg.model.api.model)
    check_inference_dtype(cfg.get("inference_dtype", "float32"),
                          cfg.trainer.get("accelerator", "auto"))
    if cfg.arm.fit:
        if not cfg.arm.lr or cfg.arm.lr <= 0:
            raise UserError(f"arm.lr={cfg.arm.lr} must be > 0 for {cfg.arm.name}; set arm.lr "
                            "(or model.finetune_lr / model.lora_lr)")
        if not cfg.trainer.max_epochs or cfg.trainer.max_epochs < 1:
            raise UserError(f"max_epochs={cfg.trainer.max_epochs} must be >= 1; set "
                            "model.max_epochs (or arm.max_epochs)")
    for what, folder in (("paths.output_dir (hydra.run.dir)", cfg.paths.output_dir),
                         ("results_file", Path(cfg.results_file).parent
                          if cfg.get("results_file") else None)):
        if folder is None:
            continue
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as err:
            raise UserError(f"cannot write to {folder} ({what}): {err.strerror}; point it at "
                            "a writable folder") from err


def content_hash(rows) -> str:
    """A short hash of rows (a split or the demos), in order."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, default=str).encode() + b"\n")
    return digest.hexdigest()[:16]


def _tokenizer_corpus(task: Task, splits) -> list[str]:
    """Text a `tiny` tokenizer is trained on: the task's whole train split (before any
    train_size limit, so every label budget shares one tokenizer), as prompts and answers."""
    rows = [*splits["train"], *splits["validation"]]
    corpus = [task.prompt(row["text"]) + task.target(task.answer(row)) for row in rows]
    corpus += [task.target(verbal) for verbal in task.labels.values()] * 20
    return corpus
