"""Tasks: the task types, loading data as clean splits, the label budget, few-shot demos, the
prompt layout. Names load on first use: the report reads the task types without `datasets`."""

import importlib

_HOME = {"load_splits": "loading", "BUILT_IN": "task_types", "TaskType": "task_types",
         "task_type": "task_types",
         **dict.fromkeys(("IGNORE_INDEX", "PromptEncoder", "Task", "chat_layout",
                          "prompt_layout"), "prompts"),
         **dict.fromkeys(("balanced_order", "classes_covered", "content_hash", "data_labels",
                          "job_splits", "label_budget", "limit_test", "select_demos",
                          "tokenizer_corpus"), "splits")}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
