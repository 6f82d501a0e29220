"""A task: where its data comes from, how an example becomes a prompt, and its label set.

Tasks are YAML files under conf/task/; this module turns one into prompts and clean splits
with two columns, `text` and `label` (the label's name), whatever the source called them.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets import ClassLabel, Dataset, DatasetDict

from .errors import UserError
from .hub import hub_offline_flag, hub_reachable

log = logging.getLogger(__name__)

FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
SPLIT_ROLES = ("train", "validation", "test")


@dataclass(frozen=True)
class Task:
    name: str
    type: str
    template: str
    target_template: str
    demo_separator: str
    labels: dict[str, str]  # label name in the data -> verbalization the model scores
    metrics: tuple[str, ...]

    @classmethod
    def from_config(cls, cfg) -> "Task":
        if "{text}" not in cfg.template:
            raise UserError(
                f"task.template has no {{text}} placeholder: {cfg.template!r}; add {{text}} "
                "where the input goes"
            )
        if "{label}" not in cfg.target_template:
            raise UserError(
                f"task.target_template has no {{label}} placeholder: {cfg.target_template!r}"
            )
        labels = {str(name): str(verbal) for name, verbal in cfg.labels.items()}
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
        return cls(
            name=cfg.name,
            type=cfg.type,
            template=cfg.template,
            target_template=cfg.target_template,
            demo_separator=cfg.demo_separator,
            labels=labels,
            metrics=tuple(cfg.metrics),
        )

    @property
    def label_names(self) -> list[str]:
        return list(self.labels)

    def prompt(self, text: str) -> str:
        """The prompt for one input (str.replace, so braces in the text are safe)."""
        return self.template.replace("{text}", text)

    def target(self, label: str) -> str:
        """The answer the model scores (or learns) after the prompt."""
        return self.target_template.replace("{label}", self.labels[label])

    def demonstration(self, text: str, label: str) -> str:
        return self.prompt(text) + self.target(label)


def load_splits(cfg, seed: int) -> DatasetDict:
    """Load the task's data as train / validation / test with columns `text` and `label`.

    The validation split is carved from train by `seed` when the source has none.
    """
    raw, source = _load_raw(cfg)
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


def limit_splits(splits: DatasetDict, train_size: int | None, test_size: int | None,
                 seed: int) -> DatasetDict:
    """Keep `train_size` labelled examples (seeded) and a fixed subset of `test_size`."""
    splits = DatasetDict(splits)
    if train_size is not None:
        available = len(splits["train"])
        if not 0 < train_size <= available:
            raise UserError(
                f"train_size={train_size} but the train split has {available} examples; "
                f"use 1..{available} or train_size=null for all"
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
        data_files = {split: str(path) for split, path in files.items()}
        return datasets.load_dataset(suffixes.pop(), data_files=data_files), "task.data_files"
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
    """Keep the text and label columns as `text` / `label` (label names as strings)."""
    for key in ("text_field", "label_field"):
        column = cfg[key]
        if column not in split.column_names:
            raise UserError(
                f"column '{column}' (task.{key}) not found in {source}; "
                f"available columns: {', '.join(split.column_names)}"
            )
    label_feature = split.features[cfg.label_field]
    names = label_feature.names if isinstance(label_feature, ClassLabel) else None

    def to_row(row):
        text, label = row[cfg.text_field], row[cfg.label_field]
        if names is not None and label is not None:
            label = names[int(label)]
        return {"text": "" if text is None else str(text), "label": str(label)}

    split = split.map(to_row, remove_columns=split.column_names)
    before = len(split)
    split = split.filter(lambda row: row["text"].strip() != "")
    if len(split) < before:
        log.warning("dropped %d rows with empty text from %s", before - len(split), source)
    if len(split) == 0:
        raise UserError(f"{source} has no rows with text; check the file and task.text_field")
    unknown = sorted(set(split.unique("label")) - set(cfg.labels))
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise UserError(
            f"{source} has {len(unknown)} label(s) not in task.labels: {shown}; "
            "add them to task.labels or fix task.label_field"
        )
    return split
