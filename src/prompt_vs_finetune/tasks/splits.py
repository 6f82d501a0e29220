"""What a job does with the loaded splits: limit them to the label budget and the test subset,
write and read them as prepared files (the DVC prepare stage), and hash them."""

import hashlib
import json
from pathlib import Path

import datasets
from datasets import DatasetDict

from ..errors import UserError
from .loading import SPLIT_ROLES, load_splits
from .spec import Task

PREPARED_INFO = "prepared.json"  # beside the prepared splits: what the load dropped


def job_splits(cfg, task: Task) -> tuple[DatasetDict, int, list[str]]:
    """(the job's splits: the task's, or the prepared ones in `data_dir`, limited to
    train_size / test_size; rows dropped for being empty; the tokenizer corpus)."""
    if cfg.data_dir:
        splits, dropped = load_prepared(Path(cfg.data_dir))
    else:
        splits, dropped = load_splits(cfg.task, cfg.seed)
    corpus = tokenizer_corpus(task, splits)
    return limit_splits(splits, cfg.train_size, cfg.test_size, cfg.seed), dropped, corpus


def tokenizer_corpus(task: Task, splits: DatasetDict) -> list[str]:
    """Text a tokenizer built for the task (`tiny`, the benchmarks' models) is trained on: the
    task's whole train and validation splits (before any train_size limit, so every label
    budget shares one tokenizer) as prompts and answers, and every label's verbalization."""
    rows = [*splits["train"], *splits["validation"]]
    corpus = [task.demonstration(row) for row in rows]
    return corpus + [task.target(verbal) for verbal in task.labels.values()] * 20


def limit_splits(splits: DatasetDict, train_size: int | str | None, test_size: int | None,
                 seed: int) -> DatasetDict:
    """Keep `train_size` labelled examples (seeded) and a fixed subset of `test_size`."""
    splits = DatasetDict(splits)
    if train_size == "all":
        train_size = None
    if train_size is not None:
        available = len(splits["train"])
        if not 0 < train_size <= available:
            raise UserError(f"train_size={train_size} but the train split has {available} "
                            f"examples; use 1..{available}, or train_size=all (or null) for "
                            "all of it")
        splits["train"] = splits["train"].shuffle(seed=seed).select(range(train_size))
    if test_size is not None:
        n = min(test_size, len(splits["test"]))
        # A fixed shuffle: every seed and arm is scored on the same test examples.
        splits["test"] = splits["test"].shuffle(seed=0).select(range(n))
    return splits


def write_splits(splits: DatasetDict, dropped: int, out: Path) -> None:
    """Prepared splits as JSON lines (columns `text` and `label` or `references`), and the
    count of rows the load dropped, so a job on them logs what a direct job would."""
    out.mkdir(parents=True, exist_ok=True)
    for role, split in splits.items():
        split.to_json(out / f"{role}.jsonl", lines=True, force_ascii=False)
    (out / PREPARED_INFO).write_text(json.dumps({"dropped_empty_rows": dropped}))


def load_prepared(out: Path) -> tuple[DatasetDict, int]:
    """Splits written by `write_splits` (what `pvf-prepare` leaves for the DVC run stage)."""
    files = {role: out / f"{role}.jsonl" for role in SPLIT_ROLES}
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise UserError(f"prepared split not found: {missing[0]} (data_dir); run pvf-prepare "
                        "or set data_dir=null")
    info = out / PREPARED_INFO
    dropped = json.loads(info.read_text())["dropped_empty_rows"] if info.is_file() else 0
    splits = datasets.load_dataset("json", data_files={k: str(v) for k, v in files.items()})
    return splits, dropped


def content_hash(rows) -> str:
    """A short hash of rows (a split or the demos), in order."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, default=str).encode() + b"\n")
    return digest.hexdigest()[:16]
