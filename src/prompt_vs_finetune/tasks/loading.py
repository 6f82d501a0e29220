"""A task's data (local files or a Hub dataset) as clean splits with two columns, `text` and
`label` (the label's name) or `references`, whatever the source called them."""

import json
import logging
import os
import time
from pathlib import Path

import datasets
from datasets import Dataset, DatasetDict, Features, Value

from ..errors import UserError
from ..hub import hub_offline_flag, hub_reachable
from ..project import data_path
from .task_types import task_type

log = logging.getLogger(__name__)

FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
SPLIT_ROLES = ("train", "validation", "test")
READ_TRIES = 3
STILL_S = 0.5  # a data file is read once it has not changed for this long


def _load_file(builder: str, path: Path, split: str) -> Dataset:
    """The file once it has stood still (a data job still writing it, or rewriting it in a
    loop, was read at 40 of its 440 rows), reread if it changed as it was read."""
    key = f"{path} (task.data_files.{split})"
    if not os.access(path, os.R_OK):  # not a PermissionError traceback through `datasets`
        raise UserError(f"cannot read {key}: Permission denied; make it readable (chmod u+r) "
                        "or point task.data_files at a readable copy")
    for _ in range(READ_TRIES):
        before = _version(path)
        if time.time() - before[0] / 1e9 < STILL_S:  # changed just now: is it still changing?
            time.sleep(STILL_S)
            if _version(path) != before:
                continue
        if before[1] == 0:
            raise UserError(f"data file is empty: {key}; fill it or point task.data_files at "
                            "the right file")
        try:
            loaded = datasets.load_dataset(builder, data_files=str(path), split="train")
        except (ValueError, StopIteration, datasets.exceptions.DatasetGenerationError) as err:
            if _version(path) != before:
                continue  # a half-written file: read it again
            raise UserError(f"cannot read {key} as {builder}: {_why(builder, path, err)}") from err
        if _version(path) == before:
            break
    else:
        raise UserError(f"data file {key} changed while it was read, {READ_TRIES} times; run "
                        "again once whatever writes it has finished")
    if len(loaded) == 0:
        raise UserError(f"data file has no rows: {key} (a header only?); add its examples")
    return loaded


def _version(path: Path) -> tuple[int, int, int]:
    """What changes when a file is rewritten (a reread is fresh: its cache is keyed by mtime)."""
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def _why(builder: str, path: Path, err: Exception) -> str:
    """Why the loader refused a file: its encoding, a bad JSON line, no rows, or its own words."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        where = f"byte 0x{raw[bad.start]:02x} at offset {bad.start}"
        if b"\0" in raw[:4096]:
            return f"it is binary, not text ({where}); point task.data_files at the data file"
        return (f"it is not UTF-8 text ({where}); save it as UTF-8 (e.g. iconv -f latin1 -t "
                "utf-8 in > out)")
    lines = text.splitlines()
    if builder == "json" and path.suffix.lower() == ".jsonl":
        for number, line in enumerate(lines, 1):
            try:
                if line.strip():
                    json.loads(line)
            except json.JSONDecodeError as bad:
                return f"line {number} is not valid JSON ({bad.msg}); fix or remove that line"
    if builder == "csv" and len([line for line in lines if line.strip()]) <= 1:
        return "it has a header but no rows; add its examples"
    cause = err.__cause__ or err.__context__ or err
    words = str(cause).splitlines()[0][:160] if str(cause).strip() else type(cause).__name__
    return f"{words}; fix the file or its extension"


def load_splits(task_cfg) -> tuple[DatasetDict, int]:
    """(the source's train, test and any validation split, the rows dropped empty)."""
    raw, source = _load_raw(task_cfg)
    splits, dropped = {}, 0
    for role in SPLIT_ROLES:
        name = task_cfg.splits[role]
        if name is None and role != "validation":
            raise UserError(f"task.splits.{role} is not set; name the {role} split of {source}")
        if name is None:
            continue
        if name not in raw:
            raise UserError(f"split '{name}' (task.splits.{role}) is not in {source}; "
                            f"available splits: {', '.join(raw)}")
        splits[role], lost = _normalise(raw[name], task_cfg, f"{source} [{name}]")
        dropped += lost
    return DatasetDict(splits), dropped


def _load_raw(task_cfg) -> tuple[DatasetDict, str]:
    if task_cfg.data_files:
        files = {split: Path(data_path(path, f"task.data_files.{split}"))
                 for split, path in task_cfg.data_files.items()}
        for split, path in files.items():
            key = f"{path} (task.data_files.{split})"
            if path.is_dir():
                raise UserError(f"{key} is a folder, not a file; name the data file inside it")
            if path.is_symlink() and not path.exists():
                raise UserError(f"{key} is a symbolic link that leads nowhere (a loop, or its "
                                "target is gone); point it at the data file")
            if path.exists() and not path.is_file():
                raise UserError(f"{key} is not a regular file (a pipe or a device, read once); "
                                "save the data to a file")
            if not path.is_file():
                raise UserError(f"data file not found: {key}; fix the path or drop "
                                "task.data_files to load task.hub")
            if path.suffix.lower() not in FILE_BUILDERS:
                raise UserError(f"unsupported data file type '{path.suffix}': {path}; "
                                f"use one of {', '.join(FILE_BUILDERS)}")
        builders = sorted({FILE_BUILDERS[path.suffix.lower()] for path in files.values()})
        if len(builders) > 1:
            raise UserError(f"task.data_files mixes file types ({', '.join(builders)}); "
                            "use one type for every split")
        # one load per file: splits may differ in columns (DialogSum's test has summary1..3)
        return DatasetDict({split: _load_file(builders[0], path, split)
                            for split, path in files.items()}), "task.data_files"
    hub = task_cfg.hub
    if not hub:
        raise UserError(f"task '{task_cfg.name}' names no data: set task.hub or task.data_files")
    if not hub_reachable() and not hub_offline_flag():
        raise UserError(f"cannot reach the Hugging Face Hub to load dataset '{hub}'; run "
                        "offline with local files (task.data_files={train: ..., test: ...}) or "
                        "task=intent_sample, or set HF_HUB_OFFLINE=1 to use a cached copy")
    try:
        return datasets.load_dataset(hub, task_cfg.hub_config), hub
    except (OSError, ConnectionError, datasets.exceptions.DatasetNotFoundError) as err:
        raise UserError(f"could not load dataset '{hub}' (task.hub): {err}".splitlines()[0]
                        ) from err


def _normalise(split: Dataset, task_cfg, source: str) -> tuple[Dataset, int]:
    """(the split as `text` and the answer column, the rows dropped empty)."""
    if task_cfg.text_field not in split.column_names:
        raise UserError(f"column '{task_cfg.text_field}' (task.text_field) not found in "
                        f"{source}; available columns: {', '.join(split.column_names)}")
    kind = task_type(task_cfg.type)
    to_row = kind.row_maker(split, task_cfg, source)
    # stated, or datasets keeps an integer label column's (or a number text's) old type
    features = Features({"text": Value("string"), kind.answer_column: kind.answer_feature()})
    split = mapped = split.map(to_row, remove_columns=split.column_names, features=features)
    before, keep = len(split), kind.answer_column
    split = split.filter(lambda row: row["text"].strip() != "" and bool(row[keep]))
    if len(split) < before:
        if task_cfg.empty_rows == "error":
            raise UserError(f"{source} has {before - len(split)} rows with empty text or no "
                            f"{keep}; fix the data, or set task.empty_rows=drop to skip them")
        log.warning("dropped %d rows with empty text or no %s from %s", before - len(split),
                    keep, source)
    if len(split) == 0:
        if any(text.strip() for text in mapped["text"]):  # text, but every answer empty
            what, field = ("label", "task.label_field") if keep == "label" else \
                ("reference", "task.reference_fields")
            raise UserError(f"{source} has no row with a {what} (all {before} are empty); "
                            f"check the file and {field}")
        raise UserError(f"{source} has no rows with text; check the file and task.text_field")
    return split, before - len(split)
