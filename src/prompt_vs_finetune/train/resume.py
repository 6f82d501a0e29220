"""Resume a fine-tuning job after a crash (SIGKILL, preemption, power loss).

A job's state folder is keyed by its resolved config (without paths, Hydra and logging
switches), so starting the same command again finds it: it holds `last.ckpt` (model,
optimizer, scheduler, loop and data-loader position, RNG states, callbacks; written every
`resume_every_n_steps` steps) and the MLflow run id. The job then continues from that step
into the same run. A job that ends (FINISHED, FAILED or KILLED) removes its state.
"""

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig

from ..errors import UserError
from ..tracking.runs import config_hash


class AtomicLastCheckpoint(ModelCheckpoint):
    """last.ckpt every n steps, written to a temporary file and renamed: a kill mid-write
    leaves the previous checkpoint intact, never half a file.

    Never at an epoch's last batch (Lightning would resume into the next epoch and skip that
    epoch's validation, which early stopping and the best checkpoint depend on); instead once
    more after each epoch's validation.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return
        if self._due(trainer):
            # Lightning logs a step's metrics only after this hook: a kill between the
            # checkpoint and that logging would lose the step's point for good (the resumed
            # run starts after it). Log first; the job's logger drops the repeat.
            trainer._logger_connector.update_train_step_metrics()
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def _due(self, trainer) -> bool:
        every = self._every_n_train_steps
        return (every > 0 and trainer.global_step % every == 0
                and not self._should_skip_saving_checkpoint(trainer))

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        tmp = f"{filepath}.tmp"
        super()._save_checkpoint(trainer, tmp)
        if trainer.is_global_zero:
            os.replace(tmp, filepath)
        self._last_checkpoint_saved = filepath


class ResumableEarlyStopping(EarlyStopping):
    """EarlyStopping that survives a resume from the checkpoint written right after an
    epoch's validation: that epoch was already checked (the callback's state is in the
    checkpoint), and the restored trainer has no `val/loss` to check again, which Lightning's
    own callback takes for a missing metric and stops the job."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._restored = False

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        self._restored = True

    def _run_early_stopping_check(self, trainer) -> None:
        if self._restored and self.monitor not in trainer.callback_metrics:
            return  # this epoch was checked before the interruption
        self._restored = False
        super()._run_early_stopping_check(trainer)


def job_key(cfg: DictConfig) -> str:
    """Hash of what determines the job's result (not where it writes or how it logs)."""
    return config_hash(cfg)


@dataclass
class ResumeState:
    folder: Path

    @classmethod
    def for_job(cls, cfg: DictConfig) -> "ResumeState | None":
        if not cfg.resume or not cfg.arm.fit:
            return None
        return cls(Path(cfg.paths.resume_dir) / job_key(cfg))

    @property
    def checkpoint(self) -> Path | None:
        path = self.folder / "last.ckpt"
        return path if path.is_file() else None

    def previous(self) -> dict | None:
        """{run_id, output_dir} of the interrupted attempt, if it left a checkpoint."""
        meta = self.folder / "job.json"
        if self.checkpoint is None or not meta.is_file():
            return None
        try:  # mmap: reads the archive's index, not the weights
            torch.load(self.checkpoint, map_location="cpu", weights_only=True, mmap=True)
            return json.loads(meta.read_text())
        except Exception as err:  # noqa: BLE001 - any unreadable file is the same problem
            raise UserError(
                f"the resume checkpoint {self.checkpoint} is unreadable "
                f"({str(err).splitlines()[0][:120]}); delete {self.folder} to start this job "
                "afresh, or run with resume=false") from err

    def start(self, run_id: str, output_dir: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "job.json").write_text(json.dumps({"run_id": run_id,
                                                          "output_dir": output_dir}))

    def callback(self, every_n_steps: int) -> ModelCheckpoint:
        """Writes last.ckpt every n optimizer steps (atomically: Lightning saves, then moves)."""
        return AtomicLastCheckpoint(dirpath=self.folder, filename="last", save_top_k=0,
                                    save_last=True, every_n_train_steps=every_n_steps,
                                    enable_version_counter=False)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
