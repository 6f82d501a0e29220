"""A task: where its data comes from, how an example becomes a prompt, and its label set.

Tasks are YAML files under conf/task/; this module turns one into prompts and clean splits
with two columns, `text` and `label` (the label's name), whatever the source called them.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from datasets import ClassLabel, Dataset, DatasetDict

from .errors import UserError
from .hub import hub_offline_flag, hub_reachable

log = logging.getLogger(__name__)

FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
SPLIT_ROLES = ("train", "validation", "test")


TASK_TYPES = ("classification", "generation")
DROPPED: dict[str, int] = {}  # rows dropped per source split by the last load (for logging)


@dataclass(frozen=True)
class Task:
    name: str
    type: str  # classification | generation
    template: str
    target_template: str
    demo_separator: str
    metrics: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)  # label name -> verbalization
    stop: tuple[str, ...] = ()  # generation: strings that end an answer besides end-of-text

    @classmethod
    def from_config(cls, cfg) -> "Task":
        if cfg.type not in TASK_TYPES:
            raise UserError(f"task.type '{cfg.type}' is unknown; use {' or '.join(TASK_TYPES)}")
        templates = cfg.get("templates") or {}
        if templates and cfg.get("prompt") not in templates:
            raise UserError(f"task.prompt '{cfg.get('prompt')}' is not one of task.templates "
                            f"({', '.join(templates)}); pick one or set task.template")
        if "{text}" not in cfg.template:
            raise UserError(
                f"task.template has no {{text}} placeholder: {cfg.template!r}; add {{text}} "
                "where the input goes"
            )
        if "{answer}" not in cfg.target_template:
            raise UserError(
                f"task.target_template has no {{answer}} placeholder: {cfg.target_template!r}; "
                "add {answer} where the label or summary goes"
            )
        labels = {}
        if cfg.type == "classification":
            labels = {str(name): str(verbal) for name, verbal in (cfg.get("labels") or {}).items()}
            if not labels:
                raise UserError(f"task '{cfg.name}' lists no labels; add task.labels")
            _check_verbalizations(labels)
        return cls(
            name=cfg.name,
            type=cfg.type,
            template=cfg.template,
            target_template=cfg.target_template,
            demo_separator=cfg.demo_separator,
            metrics=tuple(cfg.metrics),
            labels=labels,
            stop=tuple(cfg.get("stop") or ()),
        )

    @property
    def label_names(self) -> list[str]:
        return list(self.labels)

    def prompt(self, text: str) -> str:
        """The prompt for one input (str.replace, so braces in the text are safe)."""
        return self.template.replace("{text}", text)

    def target(self, answer: str) -> str:
        """The text after the prompt: a label's verbalization or a summary."""
        return self.target_template.replace("{answer}", answer)

    def answer(self, row: dict) -> str:
        """What a fine-tuned model learns to write for a row (and a demonstration shows)."""
        if self.type == "classification":
            return self.labels[row["label"]]
        return row["references"][0]

    def demonstration(self, row: dict) -> str:
        return self.prompt(row["text"]) + self.target(self.answer(row))


def _check_verbalizations(labels: dict[str, str]) -> None:
    seen: dict[str, str] = {}
    for name, verbal in labels.items():
        if not verbal.strip():
            raise UserError(f"task.labels.{name} has an empty verbalization; give it words")
        if verbal in seen:
            raise UserError(
                f"labels '{seen[verbal]}' and '{name}' share the verbalization {verbal!r}; "
                "give each label its own words in task.labels"
            )
        seen[verbal] = name


def _load_file(builder: str, path: Path, split: str) -> Dataset:
    if path.stat().st_size == 0:
        raise UserError(f"data file is empty: {path} (task.data_files.{split}); fill it or "
                        "point task.data_files at the right file")
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train")
    except (ValueError, StopIteration, datasets.exceptions.DatasetGenerationError) as err:
        raise UserError(f"cannot read {path} (task.data_files.{split}) as {builder}: "
                        f"{str(err).splitlines()[0][:160] or type(err).__name__}; fix the file "
                        "or its extension") from err


def load_splits(cfg, seed: int) -> DatasetDict:
    """Load the task's data as train / validation / test with columns `text` and `label`.

    The validation split is carved from train by `seed` when the source has none.
    """
    raw, source = _load_raw(cfg)
    DROPPED.clear()
    splits: dict[str, Dataset] = {}
    for role in SPLIT_ROLES:
        name = cfg.splits.get(role)
        if name is None:
            continue
        if name not in raw:
            raise UserError(
                f"split '{name}' (task.splits.{role}) is not in {source}; "
                f"available splits: {', '.join(raw)}"
            )
        splits[role] = _normalise(raw[name], cfg, f"{source} [{name}]")
    for role in ("train", "test"):
        if role not in splits:
            raise UserError(f"task.splits.{role} is not set; name the {role} split of {source}")
    if "validation" not in splits:
        parts = splits["train"].train_test_split(test_size=cfg.val_fraction, seed=seed)
        splits["train"], splits["validation"] = parts["train"], parts["test"]
    return DatasetDict(splits)


def write_splits(splits: DatasetDict, out: Path) -> None:
    """Prepared splits as JSON lines (columns `text` and `label` or `references`)."""
    out.mkdir(parents=True, exist_ok=True)
    for role, split in splits.items():
        split.to_json(out / f"{role}.jsonl", lines=True, force_ascii=False)


def load_prepared(out: Path) -> DatasetDict:
    """Splits written by `write_splits` (what `pvf-prepare` leaves for the DVC run stage)."""
    files = {role: out / f"{role}.jsonl" for role in SPLIT_ROLES}
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise UserError(f"prepared split not found: {missing[0]} (data_dir); run pvf-prepare "
                        "or set data_dir=null")
    return datasets.load_dataset("json", data_files={k: str(v) for k, v in files.items()})


def limit_splits(splits: DatasetDict, train_size: int | None, test_size: int | None,
                 seed: int) -> DatasetDict:
    """Keep `train_size` labelled examples (seeded) and a fixed subset of `test_size`."""
    splits = DatasetDict(splits)
    if train_size == "all":
        train_size = None
    if train_size is not None:
        available = len(splits["train"])
        if not isinstance(train_size, int) or not 0 < train_size <= available:
            raise UserError(
                f"train_size={train_size} but the train split has {available} examples; "
                f"use 1..{available}, or train_size=all (or null) for all of it"
            )
        splits["train"] = splits["train"].shuffle(seed=seed).select(range(train_size))
    if test_size is not None:
        n = min(test_size, len(splits["test"]))
        # A fixed shuffle: every seed and arm is scored on the same test examples.
        splits["test"] = splits["test"].shuffle(seed=0).select(range(n))
    return splits


def _load_raw(cfg) -> tuple[DatasetDict, str]:
    if cfg.get("data_files"):
        files = {split: Path(path) for split, path in cfg.data_files.items()}
        suffixes = set()
        for split, path in files.items():
            if not path.is_file():
                raise UserError(
                    f"data file not found: {path} (task.data_files.{split}); "
                    "fix the path or drop task.data_files to load task.hub"
                )
            if path.suffix.lower() not in FILE_BUILDERS:
                raise UserError(
                    f"unsupported data file type '{path.suffix}': {path}; "
                    f"use one of {', '.join(FILE_BUILDERS)}"
                )
            suffixes.add(FILE_BUILDERS[path.suffix.lower()])
        if len(suffixes) > 1:
            raise UserError(f"task.data_files mixes file types ({', '.join(sorted(suffixes))}); "
                            "use one type for every split")
        builder = suffixes.pop()
        # one load per file: splits may differ in columns (DialogSum's test has summary1..3)
        return DatasetDict({split: _load_file(builder, path, split)
                            for split, path in files.items()}), "task.data_files"
    if not cfg.get("hub"):
        raise UserError(f"task '{cfg.name}' names no data: set task.hub or task.data_files")
    if not hub_reachable() and not hub_offline_flag():
        raise UserError(
            f"cannot reach the Hugging Face Hub to load dataset '{cfg.hub}'; run offline with "
            "local files (task.data_files={train: ..., test: ...}) or task=intent_sample, "
            "or set HF_HUB_OFFLINE=1 to use a cached copy"
        )
    try:
        return datasets.load_dataset(cfg.hub, cfg.get("hub_config")), cfg.hub
    except (OSError, ConnectionError, datasets.exceptions.DatasetNotFoundError) as err:
        raise UserError(
            f"could not load dataset '{cfg.hub}' (task.hub): {err}".splitlines()[0]
        ) from err


def _normalise(split: Dataset, cfg, source: str) -> Dataset:
    """Columns `text` and `label` (classification, label names as strings) or `text` and
    `references` (generation: every non-empty reference field of the row)."""
    if cfg.text_field not in split.column_names:
        raise UserError(
            f"column '{cfg.text_field}' (task.text_field) not found in {source}; "
            f"available columns: {', '.join(split.column_names)}"
        )
    to_row = _classification_row(split, cfg, source) if cfg.type == "classification" else \
        _generation_row(split, cfg, source)
    split = split.map(to_row, remove_columns=split.column_names)
    before = len(split)
    keep = "label" if cfg.type == "classification" else "references"
    split = split.filter(lambda row: row["text"].strip() != "" and bool(row[keep]))
    if len(split) < before:
        if cfg.get("empty_rows", "drop") == "error":
            raise UserError(f"{source} has {before - len(split)} rows with empty text or no "
                            f"{keep}; fix the data, or set task.empty_rows=drop to skip them")
        log.warning("dropped %d rows with empty text or no %s from %s", before - len(split),
                    keep, source)
    DROPPED[source] = before - len(split)
    if len(split) == 0:
        raise UserError(f"{source} has no rows with text; check the file and task.text_field")
    if cfg.type == "classification":
        unknown = sorted(set(split.unique("label")) - set(cfg.labels))
        if unknown:
            shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise UserError(
                f"{source} has {len(unknown)} label(s) not in task.labels: {shown}; "
                "add them to task.labels or fix task.label_field"
            )
    return split


def _text(value) -> str:
    return "" if value is None else str(value)


def _classification_row(split: Dataset, cfg, source: str):
    if cfg.label_field not in split.column_names:
        raise UserError(
            f"column '{cfg.label_field}' (task.label_field) not found in {source}; "
            f"available columns: {', '.join(split.column_names)}"
        )
    feature = split.features[cfg.label_field]
    names = feature.names if isinstance(feature, ClassLabel) else None

    def to_row(row):
        label = row[cfg.label_field]
        if names is not None and label is not None:
            label = names[int(label)]
        return {"text": _text(row[cfg.text_field]), "label": _text(label)}

    return to_row


def _generation_row(split: Dataset, cfg, source: str):
    fields = [f for f in cfg.reference_fields if f in split.column_names]
    if not fields:
        raise UserError(
            f"none of the reference columns {list(cfg.reference_fields)} "
            f"(task.reference_fields) is in {source}; available columns: "
            f"{', '.join(split.column_names)}"
        )

    def to_row(row):
        references = []
        for f in fields:  # a column may hold one reference or a list of them
            values = row[f] if isinstance(row[f], list) else [row[f]]
            references += [_text(v).strip() for v in values]
        return {"text": _text(row[cfg.text_field]), "references": [r for r in references if r]}

    return to_row
