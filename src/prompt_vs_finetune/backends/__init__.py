"""What produces a job's test predictions: a local Hugging Face model run by Lightning, or a
hosted chat model. The job never asks which one it has (the model config names the class,
`model.backend`); it hands over the task, the splits and the demonstrations, and gets back
per-example predictions and a `Usage` in the same shape from both.

Prediction rows, one per test example in test-split order:
- classification: `index`, `label` (gold index), `predicted` (index, or None when a reply
  named no label); local scoring adds `score`, `gold_logprob`, `gold_tokens`; hosted, `reply`;
- generation: `index`, `references`, `generated`, `generated_tokens`; local scoring adds
  `ref_logprob`, `ref_tokens` (the references' likelihood, for perplexity).
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from datasets import DatasetDict
from omegaconf import DictConfig

from ..tasks import Task
from ..usage import Usage


@dataclass
class Predictions:
    rows: list[dict]
    usage: Usage
    demos_used: int
    demos_dropped: int = 0
    truncated_inputs: int = 0
    metrics: dict[str, float] = field(default_factory=dict)  # the backend's own (tracking/keys)
    tags: dict[str, str] = field(default_factory=dict)


class Backend(ABC):
    """Built before any run opens (so a missing model or key fails first); `predict` runs
    inside the job's MLflow run."""

    kind: str  # "local" | "hosted": which keys its runs log (tracking/keys.py)
    resume_run_id: str | None = None  # an interrupted attempt's run to continue

    @staticmethod
    def check(cfg: DictConfig) -> None:
        """Settings this backend cannot run, refused before any data or model loads."""
        return None

    @abstractmethod
    def __init__(self, cfg: DictConfig, task: Task, splits: DatasetDict, corpus: list[str],
                 demos: list[dict], data_sha: str):
        """`data_sha`: the content hash of the splits (what a resume must find again)."""

    @abstractmethod
    def predict(self, run) -> Predictions:
        """The test split's predictions; `run` is the job's MLflow run (None on DDP ranks
        above 0, which log nothing)."""

    def close(self, outcome: str) -> None:
        """After the run has ended: "finished", "failed", "interrupted" (Ctrl-C) or
        "preempted" (SIGTERM)."""
        return None
