"""A local Hugging Face causal LM run by Lightning: fit if the arm trains, then score."""

import logging
import math
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ..config import one_device
from ..errors import Preempted, UserError, causes, first_line
from ..models.loading import apply_lora, context_length, count_parameters, load_model
from ..models.precision import check_inference_dtype
from ..scoring import build_scorer
from ..tasks import chat_layout, prompt_layout
from ..tracking.provenance import config_hash
from ..tracking.runs import is_rank_zero, raise_if_preempted, sigterm_noted
from ..tracking.store import log_fitted_model
from ..train.datamodule import TaskDataModule
from ..train.module import ArmModule, BestWeights, CostMeter
from ..train.resume import JobMLFlowLogger, ResumeCheckpoint, ResumeState
from . import Backend, Predictions, chooses_on_validation

log = logging.getLogger(__name__)


class LocalBackend(Backend):
    kind = "local"

    @staticmethod
    def check(cfg) -> None:
        check_inference_dtype(cfg.inference_dtype, cfg.trainer.accelerator)
        check_trainer(cfg.trainer)

    def load(self, task, splits, corpus, demos, data_sha):
        cfg, arm = self.cfg, self.cfg.arm  # cfg.seed: model=tiny, dropout, data order
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        model, tokenizer = load_model(cfg.model, cfg.paths.cache_dir, corpus)
        if cfg.prompt.chat:  # every arm alike: fine-tuning trains on the layout it is scored on
            task = task.with_chat(chat_layout(tokenizer, cfg.prompt.system, cfg.model.name))
        self.splits, self.tokenizer = splits, tokenizer
        if arm.fit and arm.lora:
            model = apply_lora(model, arm.lora)
        self.total_params, self.trainable_params = count_parameters(model)
        answer_room = cfg.decoding.max_new_tokens if task.kind.decodes else None
        self.encoder, self.demos_dropped = prompt_layout(
            task, tokenizer, context_length(model, cfg.model.max_length), answer_room, demos,
            splits["test"]["text"])
        scorer = build_scorer(self.encoder, cfg.scorer, cfg.decoding, cfg.seed)
        self.datamodule = TaskDataModule(splits, self.encoder, scorer, arm.batch_size,
                                         arm.group_by_length, cfg.seed)
        self.module = ArmModule(model, scorer, arm.lr, arm.weight_decay, arm.warmup_ratio,
                                cfg.compile, cfg.inference_dtype)
        # a fitted arm's state (also with resume=false, to retire an old attempt)
        self.state = ResumeState(Path(cfg.paths.resume_dir) / config_hash(cfg), data_sha,
                                 cfg.mlflow.tracking_uri) if arm.fit else None
        self.previous = self.state.attempt(bool(cfg.resume)) if self.state else None
        self.resume_run_id = self.previous["run_id"] if self.previous else None

    def predict(self, run) -> Predictions:
        cfg, arm, state = self.cfg, self.cfg.arm, self.state
        meter = CostMeter()
        callbacks = [instantiate(c) for c in cfg.callbacks.values()]
        fixed = arm.fit and len(self.splits["validation"]) < arm.min_validation
        if not arm.fit or fixed:  # nothing to choose a checkpoint or stop early by
            callbacks = [c for c in callbacks if not isinstance(c, (BestWeights, EarlyStopping))]
        if state and cfg.resume:  # after early stopping: it saves what that left
            callbacks.append(ResumeCheckpoint(state.folder / "last.ckpt",
                                              int(cfg.resume_every_n_steps)))
            if run is not None and not self.previous:
                state.start(run.info.run_id, str(cfg.paths.output_dir))
        logger = run is not None and JobMLFlowLogger(tracking_uri=cfg.mlflow.tracking_uri,
                                                     run_id=run.info.run_id)  # DDP rank 0's
        trainer = instantiate(cfg.trainer, callbacks=[*callbacks, meter], logger=logger,
                              default_root_dir=cfg.paths.output_dir, enable_checkpointing=False,
                              **self._length())
        best = self._fit(trainer) if arm.fit else None
        rows, validation = self._score(trainer, "test"), None
        if chooses_on_validation(arm.fit, cfg.train_size) and len(self.splits["validation"]):
            meter.counting = False  # scored for a search to choose on: not a prediction's cost
            validation = self._score(trainer, "validation")
        if run is not None and arm.fit and cfg.mlflow.get("log_model"):
            # the weights as scored: the best, in inference_dtype
            log_fitted_model(self.module.model, self.tokenizer, arm.name, cfg.task,
                             cfg.model.name_or_path)
        usage = meter.usage(rows=rows, total_params=self.total_params,
                            trainable_params=self.trainable_params, cost_cfg=cfg.cost,
                            device=trainer.strategy.root_device, fitted=bool(arm.fit),
                            model_memory_mb=self.module.weight_memory_mb)
        return Predictions(rows=rows, usage=usage,
                           demos_used=self.encoder.demos_used, demos_dropped=self.demos_dropped,
                           truncated_inputs=self.encoder.truncated, validation=validation,
                           metrics={"val/best_loss": best} if best is not None else {},
                           tags={"checkpoint": "last" if fixed else "best"} if arm.fit else {})

    def _score(self, trainer, split: str) -> list[dict]:
        """`split` scored as the test split is, with the weights as scored."""
        self.datamodule.scored = split
        with lightning_stops(trainer):
            trainer.test(self.module, datamodule=self.datamodule, verbose=False)
        return self.module.predictions

    def _length(self) -> dict:
        """The fit's epochs: `arm.max_epochs`, or more to reach `arm.min_steps` optimizer steps
        (a small label budget is one or two batches an epoch), with no early stop before."""
        cfg = self.cfg
        if not (cfg.arm.fit and cfg.arm.get("min_steps")):
            return {}
        accumulate = int(cfg.trainer.get("accumulate_grad_batches") or 1)
        per_epoch = max(1, len(self.datamodule.train_dataloader()) // accumulate)
        epochs = max(int(cfg.trainer.max_epochs), math.ceil(cfg.arm.min_steps / per_epoch))
        return {"max_epochs": epochs, "min_steps": int(cfg.arm.min_steps)}

    def _fit(self, trainer) -> float | None:
        """Fit, resume fitting, or take a finished fit's weights (killed while testing): the
        model holds the weights to test; the best validation loss when a best was chosen."""
        resume_from = self.state.checkpoint if self.previous else None
        if resume_from:
            log.info("resuming %s from %s", self.resume_run_id, resume_from)
            fitted = torch.load(resume_from, map_location="cpu", weights_only=True, mmap=True)
            if "best_loss" in fitted:
                self.module.load_state_dict(fitted["state_dict"],
                                            strict=self.module.strict_loading)
                self.module.on_load_checkpoint(fitted)
                return fitted["best_loss"]
        with lightning_stops(trainer):
            trainer.fit(self.module, datamodule=self.datamodule, ckpt_path=resume_from)
        return next((c.score for c in trainer.callbacks if isinstance(c, BestWeights)), None)

    def close(self, outcome: str) -> None:
        """FINISHED (or Ctrl-C) removes the resume state; a failure or SIGTERM keeps it."""
        if self.state and is_rank_zero():
            self.state.close(outcome)


def check_trainer(trainer_cfg) -> None:
    """The `trainer` config as Lightning sees it, before any model loads or run opens."""
    if not one_device(trainer_cfg) and trainer_cfg.get("use_distributed_sampler", True):
        raise UserError(f"trainer.devices={trainer_cfg.get('devices')} needs a trainer that runs "
                        "one process per device and shards the data itself; add trainer=ddp (or "
                        "trainer=fsdp)")
    try:
        instantiate(trainer_cfg, logger=False, enable_checkpointing=False,
                    enable_progress_bar=False)
    except Exception as err:  # noqa: BLE001 - Lightning's reason, as one line
        *_, root = causes(err)  # what Lightning raised, under Hydra's InstantiationException
        raise UserError(f"Lightning refuses the trainer config: {first_line(root)}; fix the "
                        "trainer key it names (`pvf --cfg job -p trainer` prints them)") from err


@contextmanager
def lightning_stops(trainer):
    """Lightning's ways of stopping, as the job reads them: SIGTERM is `Preempted`; Ctrl-C,
    which Lightning turns into `sys.exit(1)`, is KeyboardInterrupt again (the run is KILLED)."""
    try:
        with sigterm_noted():
            yield
    except SIGTERMException:
        raise Preempted("SIGTERM") from None
    except SystemExit:
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise
    raise_if_preempted()
