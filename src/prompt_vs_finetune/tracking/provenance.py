"""Where a result came from: the code (its hash, git commit and state) and the config (its hash)."""

import functools
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import yaml
from omegaconf import OmegaConf

PACKAGE = Path(__file__).parents[1]
# tracked files a run logs as params or DVC rewrites: a change to them alone is not git_dirty
_CONFIG_FILE = re.compile(r"(^|/)(conf/.+\.ya?ml|pipelines/[^/]+/study\.yaml|dvc\.lock)$")
VOLATILE = ("paths", "hydra", "resume", "resume_every_n_steps", "verbose", "results_file",
            "cache_predictions")
CELL_FREE = ("seed", "data_seed", "mlflow")  # what a cell's runs may differ in


@functools.cache
def code_version() -> str:
    """Hash of the package's sources: a job resumes, a cached prediction serves, only its code."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def config_hash(cfg, drop: tuple[str, ...] = ()) -> str:
    """Hash of what determines a job's result: the config less VOLATILE and `drop`, unresolved
    (a resolved output_dir has a timestamp; `${seed}` in arm.order_seed is the seed's key)."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    kept = {k: v for k, v in raw.items() if k not in (*VOLATILE, *drop)}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def clip(text: str, limit: int = 5000) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def git_head() -> str | None:
    return (_git("rev-parse", "HEAD") or "").strip() or None


def _stages(path: Path) -> dict:
    return (yaml.safe_load(path.read_text()) or {}).get("stages") or {} if path.is_file() else {}


def dvc_outputs() -> list[str]:
    """Under DVC (`DVC_ROOT`): the outputs in its lock files (a study rewrites them as it runs)."""
    root, top = os.environ.get("DVC_ROOT"), (_git("rev-parse", "--show-toplevel") or "").strip()
    if not root or not top:
        return []
    locks = {Path(root) / "dvc.lock", *(Path(root) / p for p in (
        _git("-C", root, "ls-files", "-z", "--", "*dvc.lock") or "").split("\0") if p)}
    outputs = []
    for lock in locks:
        try:
            stages, specs = _stages(lock), _stages(lock.with_name("dvc.yaml"))
        except (OSError, yaml.YAMLError):
            continue
        for name, stage in stages.items():
            wdir = (specs.get(name.split("@")[0]) or {}).get("wdir", ".")
            for out in stage.get("outs") or []:
                path = (lock.parent / wdir / out["path"]).resolve()
                outputs.append(os.path.relpath(path, Path(top).resolve()))
    return outputs


def split_changes(paths: list[str], outputs: list[str] = ()) -> tuple[list[str], list[str]]:
    """(code changes: the run is git_dirty; the config files' and DVC's `outputs`')."""
    ignored = [p for p in paths if _CONFIG_FILE.search(p) or any(
        p == out or p.startswith(out.rstrip("/") + "/") for out in outputs)]
    return [p for p in paths if p not in ignored], ignored


def git_tags() -> dict[str, str]:
    """`git_commit`, `git_dirty` and `git_ignored_changes` (keys.TAGS); none outside git."""
    commit, changed = git_head(), _git("diff", "HEAD", "--name-only", "--find-renames", "-z")
    if commit is None or changed is None:
        return {}
    code, ignored = split_changes([p for p in changed.split("\0") if p], dvc_outputs())
    tags = {"git_commit": commit, "mlflow.source.git.commit": commit,
            "git_dirty": str(bool(code)).lower()}
    if ignored:
        tags["git_ignored_changes"] = clip(", ".join(sorted(ignored)), 1000)
    return tags
