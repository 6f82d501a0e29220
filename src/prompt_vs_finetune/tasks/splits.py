"""What a job does with the loaded splits: its label budget and test subset, the few-shot
demonstrations, the prepared files of DVC's prepare stage, hashes."""

import hashlib
import json
import logging
import random
from collections import defaultdict
from itertools import zip_longest
from pathlib import Path

import datasets
from datasets import Dataset, DatasetDict

from ..errors import UserError
from .loading import SPLIT_ROLES, load_splits
from .prompts import Task

log = logging.getLogger(__name__)

PREPARED_INFO = "prepared.json"  # beside the prepared splits: what the load dropped


def job_splits(task_cfg, data_dir: str | None, train_size: int | str | None,
               test_size: int | None, data_seed: int) -> tuple[Task, DatasetDict, int, list[str]]:
    """(task, train/validation/test from its data or `data_dir`, rows dropped, tokenizer corpus)."""
    source, dropped = load_prepared(Path(data_dir)) if data_dir else load_splits(task_cfg)
    task = Task.from_config(task_cfg, data_labels(source))
    task.kind.check_task(task)
    splits = limit_test(label_budget(source, train_size, task_cfg.val_fraction, data_seed),
                        test_size)
    if len(splits["test"]) < 2:
        raise UserError(f"the test split has {len(splits['test'])} example(s): a quality "
                        "measured on one example says nothing; add test examples (or raise "
                        "test_size)")
    # the tokenizer sees the whole labelled pool: every budget of a task shares one tokenizer
    return task, splits, dropped, tokenizer_corpus(task, source)


def data_labels(splits: DatasetDict) -> list[str] | None:
    """Every label name in the splits (None: a generation task's)."""
    if not all("label" in split.column_names for split in splits.values()):
        return None
    return sorted({name for split in splits.values() for name in split.unique("label")})


def tokenizer_corpus(task: Task, splits: DatasetDict) -> list[str]:
    """What a tokenizer built for the task (`tiny`, the benchmarks' models) is trained on."""
    corpus = [task.demonstration(row) for role in ("train", "validation") if role in splits
              for row in splits[role].to_list()]
    return corpus + [task.target(verbal) for verbal in task.labels.values()] * 20


def label_budget(source: DatasetDict, train_size: int | str | None, val_fraction: float,
                 data_seed: int) -> DatasetDict:
    """Train and validation: a prefix of `train_size` (`all`/None: all) of one seeded balanced
    order of the labelled pool (nested budgets: docs/report.md), `val_fraction` of it held out."""
    budget = None if train_size in (None, "all") else int(train_size)
    own_validation = "validation" in source
    pool = len(source["train"]) + (len(source["validation"]) if own_validation else 0)
    if len(source["train"]) < (1 if own_validation else 2):
        raise UserError(f"the train split has {len(source['train'])} example(s): too few to "
                        "hold out a validation example and keep one to train on or draw demos "
                        "from; add examples, or give the task a validation split "
                        "(task.splits.validation)")
    if budget is not None and not 1 < budget <= pool:
        raise UserError(f"train_size={train_size} but the task has {pool} labelled examples "
                        f"(train and validation); use 2..{pool}, or train_size=all (or null) "
                        "for all of them")
    if own_validation and budget is None:  # everything: the source's own validation split
        train = source["train"].select(balanced_order(source["train"], data_seed))
        validation = source["validation"].shuffle(seed=data_seed)
    else:
        labelled = datasets.concatenate_datasets(
            [source["train"], *([source["validation"]] if own_validation else [])])
        drawn = labelled.select(balanced_order(labelled, data_seed)[:budget or pool])
        held = set(balanced_order(drawn, data_seed)[:max(1, round(val_fraction * len(drawn)))])
        validation = drawn.select(sorted(held))
        train = drawn.select([i for i in range(len(drawn)) if i not in held])
    if len(train) == 0:
        raise UserError(f"train_size={train_size or 'all'} leaves no train example once "
                        f"task.val_fraction={val_fraction} of it is held out for validation; "
                        "raise train_size or lower task.val_fraction")
    return DatasetDict({"train": train, "validation": validation, "test": source["test"]})


def balanced_order(rows: Dataset, seed: int) -> list[int]:
    """The rows' indices in a seeded round-robin over their labels in a seeded order (without
    labels: a seeded shuffle): any prefix holds every label within one of the others."""
    rng = random.Random(seed)
    if "label" not in rows.column_names:
        return rng.sample(range(len(rows)), len(rows))
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(rows["label"][:]):  # [:]: a list (a Column reads by row)
        by_label[label].append(index)
    order = sorted(by_label)
    rng.shuffle(order)
    for label in order:
        rng.shuffle(by_label[label])
    rounds = zip_longest(*(by_label[label] for label in order))
    return [index for one in rounds for index in one if index is not None]


def labelled_rows(splits: DatasetDict) -> list[dict]:
    """Train and validation as one list of rows (read whole: a Dataset iterates row by row)."""
    return splits["train"].to_list() + splits["validation"].to_list()


def classes_covered(rows) -> int:
    """How many labels the rows (a split or the demos) hold."""
    return len({row["label"] for row in rows if "label" in row})


def limit_test(splits: DatasetDict, test_size: int | None) -> DatasetDict:
    """A fixed subset of `test_size` test examples: every seed and arm scores the same ones."""
    if test_size is None:
        return splits
    n = min(test_size, len(splits["test"]))
    return DatasetDict({**splits, "test": splits["test"].shuffle(seed=0).select(range(n))})


def select_demos(pool: Dataset, k: int, selection: str, seed: int,
                 order_seed: int | None = None) -> list[dict]:
    """k demos from the train pool: which ones fixed by `seed`, their order by `order_seed`."""
    if k == 0:
        return []
    if k > len(pool):
        raise UserError(f"arm.k={k} but the train pool has {len(pool)} examples; lower arm.k")
    if selection not in ("random", "class_balanced"):
        raise UserError(f"unknown arm.selection '{selection}'; use random or class_balanced")
    if selection == "class_balanced" and "label" in pool.column_names:
        chosen = balanced_order(pool, seed)[:k]
    else:
        if selection == "class_balanced":
            log.info("arm.selection=class_balanced needs labels; a generation task draws at random")
        chosen = random.Random(seed).sample(range(len(pool)), k)
    random.Random(seed if order_seed is None else order_seed).shuffle(chosen)
    return [pool[i] for i in chosen]


def write_splits(splits: DatasetDict, dropped: int, out: Path) -> None:
    """Prepared splits as JSON lines, and the rows the load dropped (logged by a job on them)."""
    out.mkdir(parents=True, exist_ok=True)
    for role, split in splits.items():
        split.to_json(out / f"{role}.jsonl", lines=True, force_ascii=False)
    (out / PREPARED_INFO).write_text(json.dumps({"dropped_empty_rows": dropped}))


def load_prepared(out: Path) -> tuple[DatasetDict, int]:
    """Splits written by `write_splits` (`pvf-prepare`, for the DVC run stage)."""
    files = {role: out / f"{role}.jsonl" for role in SPLIT_ROLES
             if role != "validation" or (out / f"{role}.jsonl").is_file()}
    if missing := [str(path) for path in files.values() if not path.is_file()]:
        raise UserError(f"prepared split not found: {missing[0]} (data_dir); run pvf-prepare "
                        "or set data_dir=null")
    info = out / PREPARED_INFO
    dropped = json.loads(info.read_text())["dropped_empty_rows"] if info.is_file() else 0
    return datasets.load_dataset("json", data_files={k: str(v) for k, v in files.items()}), dropped


def content_hash(rows) -> str:
    """A short hash of rows (a split or the demos), in order."""
    rows = rows.to_list() if isinstance(rows, Dataset) else rows  # a Dataset iterates slowly
    lines = (json.dumps(row, sort_keys=True, default=str).encode() + b"\n" for row in rows)
    return hashlib.sha256(b"".join(lines)).hexdigest()[:16]
