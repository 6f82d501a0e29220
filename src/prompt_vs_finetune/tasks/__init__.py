"""Tasks: the spec (template, labels), loading data as clean splits, the label budget and
test subset, few-shot demonstrations, and the token layout of a prompt."""

from .demos import select_demos
from .loading import load_splits
from .prompts import IGNORE_INDEX, PromptEncoder, prompt_layout
from .spec import Task
from .splits import (
    content_hash,
    data_labels,
    job_splits,
    label_budget,
    limit_test,
    tokenizer_corpus,
)
from .task_type import BUILT_IN, TaskType, task_type


def per_example(type_name: str, rows: list[dict]) -> list[float]:
    """Each test example's quality under the named task type (its `per_example` metric)."""
    return task_type(type_name).each(rows)


__all__ = ["BUILT_IN", "IGNORE_INDEX", "PromptEncoder", "Task", "content_hash", "data_labels",
           "job_splits", "label_budget", "load_splits", "prompt_layout", "select_demos",
           "limit_test", "per_example", "task_type", "TaskType", "tokenizer_corpus"]
