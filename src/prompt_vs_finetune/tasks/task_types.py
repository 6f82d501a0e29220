"""A task type (`task.kind`): everything that differs between classifying and generating; a
built-in one, or a TaskType subclass of the user's own by import path."""

import importlib
from abc import ABC, abstractmethod
from functools import cache

from ..errors import UserError
from ..metrics import likelihood

BUILT_IN = ("classification", "generation")  # task.type values: the modules of this package


def text_of(value) -> str:
    """A data cell as text (None: empty)."""
    return "" if value is None else str(value)


class TaskType(ABC):
    """The interface; `classification.py` and `generation.py` implement it."""

    answer_column: str  # the split column holding the answer: "label" or "references"
    metric_names: tuple[str, ...]  # what task.metrics may list
    per_example: str  # the metric of each example (`score`'s second value; its mean: quality)
    quality: str  # the headline metric the report ranks arms by
    decodes: bool  # a local model writes the answer (True) or ranks the labels (False)
    keys: dict = {}  # its metric keys (metrics.Key), beside the common ones

    @abstractmethod
    def answer_feature(self):
        """The `datasets` feature of the answer column."""

    @abstractmethod
    def row_maker(self, split, task_cfg, source: str):
        """data row -> {"text": ..., <answer_column>: ...}, for one split of the task's data."""

    def labels(self, task_cfg, data_labels) -> dict[str, str]:
        """The task's label set (label name -> verbalization); none by default."""
        return {}

    def check_task(self, task) -> None:  # noqa: B027 - a hook: nothing to check by default
        """What the task and its data must hold before any model loads."""

    def check_config(self, checker) -> None:  # noqa: B027 - a hook, as check_task
        """The config keys this type reads (`config._Checker`)."""

    @abstractmethod
    def answer(self, task, row: dict) -> str:
        """What a fine-tuned model learns to write for a row (and a demonstration shows)."""

    @abstractmethod
    def score(self, task, rows: list[dict]) -> tuple[dict[str, float], list[float]]:
        """(`test/*` metrics, each example's `per_example` value in test order: for intervals)."""

    def dashboard(self) -> tuple[str, ...]:
        """The quality columns of the MLflow runs table's saved views."""
        return (self.quality,)

    @abstractmethod
    def instruction(self, task) -> str:
        """The system message of a hosted model's request."""

    @abstractmethod
    def read_replies(self, task, test, replies, max_tokens: int) -> list[dict]:
        """A hosted model's replies as prediction rows."""

    @abstractmethod
    def hidden(self, task, text: str) -> dict:
        """A text for the hybrid's teacher, its answer a placeholder: gold never reaches it."""

    @abstractmethod
    def taught(self, task, rows: list[dict]) -> tuple[list, list[float]]:
        """The teacher's output per text and its confidence (0: unusable)."""

    def vote(self, runs: list[dict]) -> tuple[list, list[float]]:
        """Several teacher prompts' outputs as one: by default the first prompt's."""
        return runs[0]["outputs"], runs[0]["confidence"]

    def as_answer(self, output):
        """A teacher's output as the value of `answer_column`."""
        return output

    @abstractmethod
    def log_predictions(self, task, texts: list[str], rows: list[dict], title: str) -> None:
        """predictions.csv and its table (`log_table`), and what reads best for the type."""


def log_table(table) -> None:
    """predictions.csv, and predictions.json: the table MLflow's run and compare pages show."""
    import mlflow
    mlflow.log_text(table.to_csv(index=False), "predictions.csv")
    mlflow.log_table(table, "predictions.json")


def answer_likelihood(rows: list[dict], answer: str) -> dict[str, float]:
    """Perplexity and bits per byte of the answers the backend scored (`{answer}_logprob`...)."""
    if f"{answer}_logprob" not in rows[0]:
        return {}
    return likelihood(*([r[f"{answer}_{part}"] for r in rows]
                        for part in ("logprob", "tokens", "bytes")))


@cache
def task_type(name: str) -> TaskType:
    """The type `task.type` names: a built-in one, or a TaskType subclass by import path."""
    if name in BUILT_IN:
        return importlib.import_module(f"{__package__}.{name}").TASK_TYPE
    module, _, attribute = str(name).rpartition(".")
    try:
        found = getattr(importlib.import_module(module), attribute) if module else None
    except ImportError:
        found = None
    if not (isinstance(found, type) and issubclass(found, TaskType)):
        raise UserError(f"task.type={name!r} is unknown; use one of {', '.join(BUILT_IN)}, or "
                        "the import path of a TaskType class (package.module.ClassName)")
    if missing := sorted(found.__abstractmethods__):
        raise UserError(f"task.type={name!r} does not define {', '.join(missing)}; a TaskType "
                        "implements every abstract method of tasks/task_types.py")
    return found()
