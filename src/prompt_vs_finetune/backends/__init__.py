"""What produces a job's test predictions, behind one interface (local.py, hosted.py, hybrid.py),
and the one cache in front of any of them (docs/performance.md); prediction rows: docs/design.md."""

import hashlib
import json
import logging
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from ..config import one_device, seed_or
from ..metrics.cost import Usage
from ..project import write_atomic
from ..tasks import content_hash
from ..tracking.provenance import code_version

log = logging.getLogger(__name__)


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
    backend = backend_for(cfg)(cfg)
    single = cfg.trainer.get("strategy", "auto") in ("auto", None) and one_device(cfg.trainer)
    cached = cfg.cache_predictions and not cfg.arm.fit and not cfg.model.api and single
    return CachedBackend(backend) if cached else backend


class CachedBackend(Backend):
    """`backend`'s predictions, from the cache (the model never loads: they are logged as they were,
    with the measured time of the run that made them), else made and stored."""

    def __init__(self, backend: Backend):
        super().__init__(backend.cfg)
        self.backend, self.kind, self.cached = backend, backend.kind, None

    def prepare(self, task, splits, corpus, demos):
        return self.backend.prepare(task, splits, corpus, demos)

    def load(self, task, splits, corpus, demos, data_sha) -> None:
        digest = cache_key(self.cfg, task, splits, demos, corpus)
        self.path = Path(self.cfg.paths.cache_dir) / "predictions" / f"{digest}.json"
        self.cached = load_cached(self.path)
        if self.cached is None:
            self.backend.load(task, splits, corpus, demos, data_sha)
            self.resume_run_id = self.backend.resume_run_id

    def predict(self, run) -> Predictions:
        if self.cached is not None:
            return self.cached
        predictions = self.backend.predict(run)  # run None: a hybrid arm's teacher
        try:
            stored = {**asdict(predictions), "run_id": run.info.run_id if run else ""}
            write_atomic(self.path, json.dumps(stored))
        except (OSError, TypeError, ValueError) as err:  # a cache that cannot be written: no cache
            log.warning("could not store the predictions in %s (%s)", self.path, err)
        return predictions

    def close(self, outcome: str) -> None:
        if self.cached is None:
            self.backend.close(outcome)


def cache_key(cfg: DictConfig, task, splits, demos: list[dict], corpus: list[str]) -> str:
    """The content hash of everything the predictions depend on."""
    sampled = task.kind.decodes and cfg.decoding.strategy == "sampling"
    chooses = chooses_on_validation(cfg.arm.fit, cfg.train_size)
    identity = {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "weights": _weight_files(cfg.model),
        "corpus": content_hash([{"t": t} for t in corpus]) if cfg.model.tiny else None,
        "task": asdict(task), "prompt": OmegaConf.to_container(cfg.prompt, resolve=True),
        "demos": content_hash(demos), "test": content_hash(splits["test"]),
        "validation": content_hash(splits["validation"]) if chooses else None,
        "scoring": OmegaConf.to_container(
            cfg.decoding if task.kind.decodes else cfg.scorer, resolve=True),
        "sampling_seed": seed_or(cfg.decoding.seed, cfg.seed) if sampled else None,
        "dtype": cfg.inference_dtype, "precision": str(cfg.trainer.get("precision")),
        "accelerator": str(cfg.trainer.get("accelerator")), "code": code_version()}
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _weight_files(model_cfg) -> list | None:
    """A local checkpoint's or GGUF file's (name, size, mtime): new weights, a new key."""
    if model_cfg.get("gguf"):
        from ..models.loading import gguf_file

        files = [gguf_file(model_cfg.gguf)]
    elif model_cfg.name_or_path and Path(model_cfg.name_or_path).is_dir():
        files = [p for p in Path(model_cfg.name_or_path).iterdir() if p.is_file()]
    else:
        return None  # a Hub name (and revision, in the model config)
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)


def load_cached(path: Path) -> Predictions | None:
    """The stored predictions, tagged with their origin; None (made again) when unreadable."""
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        log.warning("ignoring an unreadable prediction cache file %s", path)
        return None
    run_id = stored.pop("run_id")
    predictions = Predictions(**{**stored, "usage": Usage(**stored["usage"])})
    predictions.tags |= {"predictions_cached": "true", "predictions_from_run": run_id}
    log.info("predictions served from the cache (made by run %s)", run_id)
    return predictions
