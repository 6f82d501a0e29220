"""A study's `configs` stage: one hash per `pvf` job stage of a dvc.yaml, of what changes the
job's result: its composed config (conf/ as the job composes it, the hybrid's student arm
filled in), the package's code and its data folder. Each job stage takes its own hash as its
only param, so dvc.lock records 16 characters a stage instead of every config file whole, and
a stage reruns when a config value it uses changes, not when another stage's does. JSON: DVC
reads a stage's params file once for each stage, and YAML parses 100 times slower.

    python pipelines/config_hashes.py pipelines/<study>/dvc.yaml pipelines/<study>/configs.json

Run from the repository root (the stages' wdir). The hashes are keyed `<stage group>.<matrix
key>` (a job stage lists `- pipelines/<study>/configs.json: [<group>.${key}]`). A stage whose
command does not start with `pvf` gets none (the real-model study's final stages, whose config
is a choice made from tuning results, depend on those results instead)."""

import hashlib
import json
import shlex
import sys
from functools import cache
from pathlib import Path

from dvc.repo import Repo

from prompt_vs_finetune.config import fill_inherited
from prompt_vs_finetune.project import compose_options
from prompt_vs_finetune.tracking.provenance import code_version, config_hash


@cache
def folder_hash(folder: str) -> str:
    """The files under `folder`, names and bytes (a job's prepared data)."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def job_hash(overrides: list[str]) -> str:
    cfg = compose_options(overrides)
    fill_inherited(cfg)
    parts = [config_hash(cfg), code_version(), folder_hash(cfg.data_dir) if cfg.data_dir else ""]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def hashes(dvc_yaml: str) -> dict:
    """{stage group: {matrix key: hash}} for every stage of `dvc_yaml` that runs `pvf` (a stage
    alone: {name: hash})."""
    found: dict = {}
    with Repo() as repo:
        stages = repo.stage.collect(dvc_yaml)
    for stage in stages:
        command = shlex.split(stage.cmd)
        if command[0] != "pvf":
            continue
        group, _, key = stage.name.partition("@")
        if "." in key:
            raise SystemExit(f"stage {stage.name}: a '.' in its matrix key would nest its "
                             "param; quote the value without one (3e-4, not 0.0003)")
        if key:  # a matrix's or foreach's stage
            found.setdefault(group, {})[key] = job_hash(command[1:])
        else:
            found[group] = job_hash(command[1:])
    return found


if __name__ == "__main__":
    Path(sys.argv[2]).write_text(json.dumps(hashes(sys.argv[1]), indent=1, sort_keys=True))
