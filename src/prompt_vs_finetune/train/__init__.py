"""Training and the Lightning loop a local job runs: the LightningModule every local arm
shares, the data module (batches, DDP sharding), and resume after a crash."""

from .datamodule import TaskDataModule
from .module import ArmModule
from .resume import ResumeState

__all__ = ["ArmModule", "ResumeState", "TaskDataModule"]
