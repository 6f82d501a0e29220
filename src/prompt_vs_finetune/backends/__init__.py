"""What produces a job's test predictions, behind one interface (local.py, hosted.py, hybrid.py),
with one cache in front of any of them (cache.py); the prediction rows: docs/design.md."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from hydra.utils import get_class
from omegaconf import DictConfig

from ..config import one_device
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
    validation: list[dict] | None = None  # the validation split's, where a choice is made on it


class Backend(ABC):
    kind: str  # "local" | "hosted": which keys its runs log (tracking/keys.py)
    resume_run_id: str | None = None  # an interrupted attempt's run to continue

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg

    @staticmethod
    def check(cfg: DictConfig) -> None:
        """Settings this backend cannot run, refused before any data or model loads."""
        return None

    def prepare(self, task, splits, corpus: list[str], demos: list[dict]):
        """(the splits it trains and is scored on, the human-labelled demos it shows)."""
        return splits, demos

    @abstractmethod
    def load(self, task, splits, corpus: list[str], demos: list[dict], data_sha: str) -> None:
        """The model and what a resume needs, before any run opens; `data_sha`: the splits'."""

    @abstractmethod
    def predict(self, run) -> Predictions:
        """The test split's predictions; `run`: the job's MLflow run (None: DDP ranks > 0)."""

    def close(self, outcome: str) -> None:
        """After the run: "finished", "failed", "interrupted" (Ctrl-C) or "preempted"."""
        return None


def chooses_on_validation(fit: bool, train_size: int | None) -> bool:
    """A fit, or a prompting arm given a label budget (a search chooses on its validation)."""
    return bool(fit or train_size is not None)


def backend_for(cfg: DictConfig) -> type[Backend]:
    """The hybrid's when the arm has a teacher, else the model's (`model.backend`)."""
    hybrid = cfg.arm.get("teacher") is not None
    return get_class(f"{__name__}.hybrid.HybridBackend" if hybrid else cfg.model.backend)


def build(cfg: DictConfig) -> Backend:
    """The job's backend, behind the prediction cache where its inputs fix its predictions."""
    from .cache import CachedBackend

    backend = backend_for(cfg)(cfg)
    single = cfg.trainer.get("strategy", "auto") in ("auto", None) and one_device(cfg.trainer)
    cached = cfg.cache_predictions and not cfg.arm.fit and not cfg.model.api and single
    return CachedBackend(backend) if cached else backend
