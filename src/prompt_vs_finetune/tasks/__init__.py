"""Tasks: the spec (template, labels), loading data as clean splits, the label budget and
test subset, few-shot demonstrations, and the token layout of a prompt."""

from .demos import select_demos
from .loading import load_splits
from .prompts import IGNORE_INDEX, PromptEncoder, prompt_layout
from .spec import TASK_TYPES, Task
from .splits import (
    content_hash,
    data_labels,
    job_splits,
    label_budget,
    limit_test,
    tokenizer_corpus,
)

__all__ = ["IGNORE_INDEX", "TASK_TYPES", "PromptEncoder", "Task", "content_hash", "data_labels",
           "job_splits", "label_budget", "load_splits", "prompt_layout", "select_demos",
           "limit_test", "tokenizer_corpus"]
