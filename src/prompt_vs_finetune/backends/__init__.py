"""Everything that produces a job's test predictions, behind one interface: a local Hugging Face
model run by Lightning (local.py), a hosted chat model (hosted.py), the hybrid arm's teacher
and student (hybrid.py), and one cache in front of any of them (cache.py). The job never asks
which one it has; it hands over the task, the splits and the demonstrations, and gets back
per-example predictions and a `Usage` in the same shape from all.

Prediction rows, one per test example in test-split order (the task type reads them):
- ranked labels: `index`, `label` (gold index), `predicted` (index, or None when a reply
  named no label); local scoring adds `score`, `gold_logprob`, `gold_tokens`; hosted, `reply`;
- decoded answers: `index`, `references`, `generated`, `generated_tokens`; local scoring adds
  `ref_logprob`, `ref_tokens` (the references' likelihood, for perplexity).
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from hydra.utils import get_class
from omegaconf import DictConfig

from ..metrics.cost import Usage


@dataclass
class Predictions:
    rows: list[dict]
    usage: Usage
    demos_used: int
    demos_dropped: int = 0
    truncated_inputs: int = 0
    metrics: dict[str, float] = field(default_factory=dict)  # the backend's own (tracking/keys)
    tags: dict[str, str] = field(default_factory=dict)
    n_labels: int | None = None  # human labels used, where not the splits' (the hybrid's demos)
    upfront_usd: float = 0.0  # paid before training, beside it (the hybrid's teacher)


class Backend(ABC):
    """A job's backend, in three steps: `prepare` the labelled data (cheap, but for the hybrid
    arm's teacher), `load` the model (before any run opens, so a missing model or key fails
    first), then `predict` inside the job's MLflow run."""

    kind: str  # "local" | "hosted": which keys its runs log (tracking/keys.py)
    resume_run_id: str | None = None  # an interrupted attempt's run to continue

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg

    @staticmethod
    def check(cfg: DictConfig) -> None:
        """Settings this backend cannot run, refused before any data or model loads."""
        return None

    def prepare(self, task, splits, corpus: list[str], demos: list[dict]):
        """(the splits it trains and is scored on, the human-labelled demonstrations it
        shows): as given, but for a backend that labels its own training data."""
        return splits, demos

    @abstractmethod
    def load(self, task, splits, corpus: list[str], demos: list[dict], data_sha: str) -> None:
        """The model and what a resume needs; `data_sha`: the content hash of the splits."""

    @abstractmethod
    def predict(self, run) -> Predictions:
        """The test split's predictions; `run` is the job's MLflow run (None on DDP ranks
        above 0, which log nothing)."""

    def close(self, outcome: str) -> None:
        """After the run has ended: "finished", "failed", "interrupted" (Ctrl-C) or
        "preempted" (SIGTERM)."""
        return None


def backend_for(cfg: DictConfig) -> type[Backend]:
    """The backend a config names: the hybrid arm's when the arm has a teacher, else the
    model's (`model.backend`)."""
    if cfg.arm.get("teacher") is not None:
        from .hybrid import HybridBackend

        return HybridBackend
    return get_class(cfg.model.backend)


def build(cfg: DictConfig) -> Backend:
    """The job's backend, behind the prediction cache where its predictions can be reused."""
    from .cache import CachedBackend, cacheable

    backend = backend_for(cfg)(cfg)
    return CachedBackend(backend) if cacheable(cfg) else backend
