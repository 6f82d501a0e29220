"""Tasks: the task types, loading data as clean splits, the label budget, few-shot demos, the
prompt layout. Names load on first use: the report reads the task types without `datasets`."""

import importlib

_HOME = {name: module for module, names in {  # each module's public names
    "loading": "load_splits", "task_types": "BUILT_IN TaskType task_type",
    "prompts": "IGNORE_INDEX PromptEncoder Task chat_layout prompt_layout",
    "splits": "balanced_order classes_covered content_hash data_labels job_splits label_budget "
              "labelled_rows limit_test select_demos tokenizer_corpus",
}.items() for name in names.split()}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
