"""Tasks: the spec, the task types, loading data as clean splits, the label budget, few-shot
demonstrations, the token layout of a prompt. Names load on first use: the report reads the
task types, and should not pay for importing `datasets`."""

import importlib

_HOME = {"load_splits": "loading", "IGNORE_INDEX": "prompts",
         "PromptEncoder": "prompts", "prompt_layout": "prompts", "Task": "spec",
         "BUILT_IN": "task_types", "TaskType": "task_types", "task_type": "task_types",
         **dict.fromkeys(("content_hash", "data_labels", "job_splits", "label_budget",
                          "limit_test", "select_demos", "tokenizer_corpus"), "splits")}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
