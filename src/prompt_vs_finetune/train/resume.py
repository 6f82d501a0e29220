"""Resume a fine-tuning job after a crash, from a state folder per config (docs/reliability.md)."""

import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..errors import UserError, first_line
from ..models.loading import file_sha256
from ..project import write_atomic
from ..tracking.provenance import code_version
from ..tracking.runs import is_rank_zero, process_alive
from ..tracking.secrets import redact
from .module import BestWeights

log = logging.getLogger(__name__)


class ResumeCheckpoint(L.Callback):
    """last.ckpt, the fit's whole state, and its checksum every n steps and on SIGTERM; one due at
    an epoch's last batch waits for the epoch's end, or a resume would skip its validation."""

    def __init__(self, path: Path, every_n_steps: int):
        self.path, self.every = path, every_n_steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        last = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        if not last and (self._due(trainer) or trainer.received_sigterm):
            # log first (Lightning logs after this hook: a kill between loses the step's point)
            trainer._logger_connector.update_train_step_metrics()
            self.save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._due(trainer):
            self.save(trainer)

    def _due(self, trainer) -> bool:
        return self.every > 0 and trainer.global_step % self.every == 0

    def on_fit_end(self, trainer, pl_module) -> None:
        """The fit ended: the weights to test (BestWeights put them back; LoRA: the adapters)
        and the best score replace its state, no optimizer: a kill while testing resumes."""
        best = [c.score for c in trainer.callbacks if isinstance(c, BestWeights)]
        checkpoint = {"state_dict": trainer.strategy.lightning_module_state_dict(),
                      "best_loss": next(iter(best), None)}
        pl_module.on_save_checkpoint(checkpoint)
        self.save(trainer, checkpoint)

    def save(self, trainer, checkpoint: dict | None = None) -> None:
        tmp = Path(f"{self.path}.tmp")
        write_state(trainer, checkpoint or
                    trainer._checkpoint_connector.dump_checkpoint(weights_only=False), tmp)
        if trainer.is_global_zero:  # the new checksum joins the old one before the file
            sums = Path(f"{self.path}.sha256")  # moves in: last.ckpt always matches one
            old = sums.read_text().split()[:1] if sums.is_file() else []
            write_atomic(sums, " ".join([file_sha256(tmp), *old]))
            os.replace(tmp, self.path)


def write_state(trainer, state: dict, path: Path) -> None:
    """A checkpoint written by rank zero with torch.save (Lightning's own save serializes it in
    memory first: 4x slower at SmolLM2's 538 MB); a sharded strategy (FSDP) saves its own way."""
    if not isinstance(trainer.strategy, (SingleDeviceStrategy, DDPStrategy)):
        trainer.strategy.save_checkpoint(state, path)
    elif trainer.is_global_zero:
        torch.save(state, path)


class ResumableEarlyStopping(EarlyStopping):
    """EarlyStopping resumed from a checkpoint written right after an epoch's validation: that
    epoch was checked, and the restored trainer has no `val/loss` (not a missing metric)."""

    _restored = False  # set on the instance by a resume

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        self._restored = True

    def _run_early_stopping_check(self, trainer) -> None:
        if self._restored and self.monitor not in trainer.callback_metrics:
            return  # this epoch was checked before the interruption
        self._restored = False
        super()._run_early_stopping_check(trainer)


class JobMLFlowLogger(MLFlowLogger):
    """Writes into the job's run, leaves its status to the job, and logs a (metric, step) once:
    ResumeCheckpoint flushes a step's metrics before Lightning logs them."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._logged: set[tuple[str, int | None]] = set()

    def log_metrics(self, metrics, step=None) -> None:
        fresh = {k: v for k, v in metrics.items() if (k, step) not in self._logged}
        self._logged.update((k, step) for k in fresh)
        if fresh:
            super().log_metrics(fresh, step)

    def log_hyperparams(self, params) -> None:  # the job logs the flattened config itself
        pass

    def finalize(self, status: str = "success") -> None:
        pass


@dataclass
class ResumeState:
    folder: Path  # keyed by the job's config hash
    data: str  # the content hash of the job's splits
    tracking_uri: str
    code: str = field(default_factory=lambda: code_version())  # looked up when made

    @property
    def checkpoint(self) -> Path | None:
        return path if (path := self.folder / "last.ckpt").is_file() else None

    def _meta(self) -> dict | None:
        path = self.folder / "job.json"  # run id, output folder, data hash, code version
        return json.loads(path.read_text()) if path.is_file() else None

    def attempt(self, resume: bool) -> dict | None:
        """Rank 0 locks the key and chooses the attempt to continue; DDP ranks above read it."""
        if not is_rank_zero():
            meta = self._meta() if resume and self.checkpoint else None
            same = meta and (meta.get("data"), meta.get("code")) == (self.data, self.code)
            return meta if same else None
        self.lock()
        try:
            return self.previous(resume)
        except BaseException:
            self.unlock()
            raise

    def lock(self) -> None:
        """One live job per key; a lock whose process is gone (killed) is taken over."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path, me = self.folder / "lock", {"pid": os.getpid(), "host": socket.gethostname(),
                                          "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        try:
            owner = json.loads(path.read_text())
        except (OSError, ValueError):
            owner = None
        if owner and owner.get("host") == me["host"] \
                and process_alive(owner.get("pid"), other_users=False):
            raise UserError(f"the same job is already running (pid {owner['pid']}, since "
                            f"{owner.get('since')}; its state: {self.folder}); wait for it, "
                            f"or stop it (kill {owner['pid']}) and run this again to resume it")
        if owner:
            log.info("taking over the lock of pid %s, which is gone", owner.get("pid"))
        write_atomic(path, json.dumps(me))

    def unlock(self) -> None:
        (self.folder / "lock").unlink(missing_ok=True)

    def previous(self, resume: bool) -> dict | None:
        """An interrupted attempt's {run_id, output_dir}, or None: one not to continue is retired,
        one that cannot (damaged, its run not in this store) is one line, its state kept."""
        meta = self._meta()
        if meta is None:
            return None
        if self.checkpoint is None:  # killed before its first checkpoint: nothing to resume
            return self._retire(meta, "interrupted before its first resume checkpoint")
        if not resume:
            return self._retire(meta, "resume=false started this job afresh")
        if changed := " and the ".join(w for w in ("data", "code")
                                       if meta.get(w) != getattr(self, w)):
            log.warning("the %s changed since the interrupted attempt (run %s): starting afresh",
                        changed, meta["run_id"])
            return self._retire(meta, f"the {changed} changed; a new run started afresh")
        self._check_run(meta["run_id"])
        try:
            self._check_checkpoint()
        except UserError as err:  # it cannot continue: its run ends, the files stay
            self._end_run(meta["run_id"], str(err))
            raise
        return meta

    def _check_checkpoint(self) -> None:
        fix = f"run with resume=false to start afresh (or delete {self.folder})"
        sums = self.folder / "last.ckpt.sha256"
        if not sums.is_file() or file_sha256(self.checkpoint) not in sums.read_text().split():
            raise UserError(f"the resume checkpoint {self.checkpoint} is damaged (it does not "
                            f"match the checksum written with it); {fix}")
        try:  # mmap: reads the archive's index, not the weights
            torch.load(self.checkpoint, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file is the same problem
            raise UserError(f"the resume checkpoint {self.checkpoint} is unreadable "
                            f"({first_line(err, 120)}); {fix}") from err

    def _check_run(self, run_id: str) -> None:
        uri = redact(self.tracking_uri)
        try:
            run = MlflowClient(self.tracking_uri).get_run(run_id)
        except MlflowException as err:
            raise UserError(
                f"the interrupted attempt's run {run_id} is not in the tracking store {uri} "
                f"(another store?); point mlflow.tracking_uri at its store to resume it, or run "
                f"with resume=false to start afresh") from err
        if run.info.lifecycle_stage == "deleted":
            raise UserError(f"the interrupted attempt's run {run_id} was deleted from {uri}; "
                            "restore it (mlflow runs restore) to resume, or run with "
                            "resume=false to start afresh")

    def _end_run(self, run_id: str, reason: str) -> None:
        """A RUNNING run (what a kill leaves) FAILED, with the reason as its `error` tag."""
        try:
            client = MlflowClient(self.tracking_uri)
            if client.get_run(run_id).info.status in ("RUNNING", "SCHEDULED"):
                client.set_tag(run_id, "error", reason)
                client.set_terminated(run_id, "FAILED")
        except Exception:  # noqa: BLE001 - a run in another store, or deleted: nothing to end
            log.debug("could not end the old run %s", run_id, exc_info=True)

    def _retire(self, meta: dict, reason: str) -> None:
        """The old attempt's run FAILED with the reason, its checkpoint and records gone."""
        self._end_run(meta["run_id"], f"abandoned: {reason}")
        for name in ("last.ckpt", "last.ckpt.sha256", "job.json"):
            (self.folder / name).unlink(missing_ok=True)

    def start(self, run_id: str, output_dir: str) -> None:
        write_atomic(self.folder / "job.json", json.dumps({
            "run_id": run_id, "output_dir": output_dir, "data": self.data, "code": self.code}))

    def close(self, outcome: str) -> None:
        """A failure or a preemption keeps the state, for the same command to resume."""
        if outcome in ("finished", "interrupted"):
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        self.unlock()
        if self.checkpoint is not None:
            log.info("resume state kept in %s: the same command continues from its last "
                     "checkpoint (resume=false starts afresh)", self.folder)
