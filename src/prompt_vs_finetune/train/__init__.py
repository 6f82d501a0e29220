"""The Lightning loop of a local job: the module every arm shares, its data, crash resume."""

from .datamodule import TaskDataModule
from .module import ArmModule
from .resume import ResumeState

__all__ = ["ArmModule", "ResumeState", "TaskDataModule"]
