"""Where a result came from: the code (a hash of the package's sources, the git commit and
whether tracked code differs from it) and the config (a hash of what determines the result).
A leaf (no MLflow), so the warm-start client, resume, the prediction cache and the runs' tags
share one code version."""

import functools
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

from omegaconf import OmegaConf

PACKAGE = Path(__file__).parents[1]


@functools.cache
def code_version() -> str:
    """A hash of the package's source files: a job resumes, and a cached prediction is served,
    only into the code that made it."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def clip(text: str, limit: int = 5000) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


# Tracked files whose values every run logs as params (the composed config) or that DVC
# rewrites as it runs: `dvc exp run -S` edits the params files, `dvc repro` dvc.lock. A change
# to them alone leaves the code at git_commit, so it does not make a run git_dirty.
_CONFIG_FILE = re.compile(r"(^|/)(conf/.+\.ya?ml|pipelines/[^/]+/study\.yaml|dvc\.lock)$")


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def changed_files() -> list[str] | None:
    """Tracked files that differ from HEAD (from the repository root); None outside git."""
    out = _git("diff", "HEAD", "--name-only", "--find-renames", "-z")
    return None if out is None else [path for path in out.split("\0") if path]


def _yaml_stages(path: Path) -> dict:
    import yaml

    return (yaml.safe_load(path.read_text()) or {}).get("stages") or {} if path.is_file() else {}


def dvc_outputs() -> list[str]:
    """Under DVC (`DVC_ROOT`): the outputs its lock files list (from the repository root). A
    study that versions its results rewrites them as it runs, which says nothing of the code."""
    import yaml

    root, top = os.environ.get("DVC_ROOT"), (_git("rev-parse", "--show-toplevel") or "").strip()
    if not root or not top:
        return []
    locks = {Path(root) / "dvc.lock", *(Path(root) / p for p in (
        _git("-C", root, "ls-files", "-z", "--", "*dvc.lock") or "").split("\0") if p)}
    outputs = []
    for lock in locks:
        try:
            stages, specs = _yaml_stages(lock), _yaml_stages(lock.with_name("dvc.yaml"))
        except (OSError, yaml.YAMLError):
            continue
        for name, stage in stages.items():
            wdir = (specs.get(name.split("@")[0]) or {}).get("wdir", ".")
            for out in stage.get("outs") or []:
                path = (lock.parent / wdir / out["path"]).resolve()
                outputs.append(os.path.relpath(path, Path(top).resolve()))
    return outputs


def split_changes(paths: list[str], outputs: list[str] = ()) -> tuple[list[str], list[str]]:
    """(code: changes that make a run git_dirty; ignored: changes to files whose values are
    the run's params, or that DVC rewrites as it runs: dvc.lock and the stages' `outputs`)."""
    def ignored(path: str) -> bool:
        return bool(_CONFIG_FILE.search(path)) or any(
            path == out or path.startswith(out.rstrip("/") + "/") for out in outputs)

    return [p for p in paths if not ignored(p)], [p for p in paths if ignored(p)]


def git_head() -> str | None:
    return (_git("rev-parse", "HEAD") or "").strip() or None


def git_tags() -> dict[str, str]:
    """`git_commit`, and `git_dirty`: whether tracked code differs from it; changes to the
    config files and DVC's outputs (`split_changes`) are listed in `git_ignored_changes`."""
    commit, paths = git_head(), changed_files()
    if commit is None or paths is None:
        return {}
    code, ignored = split_changes(paths, dvc_outputs())
    tags = {"git_commit": commit, "mlflow.source.git.commit": commit,
            "git_dirty": str(bool(code)).lower()}
    if ignored:
        tags["git_ignored_changes"] = clip(", ".join(sorted(ignored)), 1000)
    return tags


VOLATILE = ("paths", "hydra", "resume", "resume_every_n_steps", "verbose", "results_file",
            "cache_predictions")
CELL_FREE = ("seed", "data_seed", "mlflow")  # what a cell's runs may differ in


def config_hash(cfg, drop: tuple[str, ...] = ()) -> str:
    """Hash of what determines a job's result (not where it writes or how it logs), without
    the top-level keys in `drop`. The config is hashed unresolved: `${paths.output_dir}`
    carries a timestamp once resolved, `${seed}` in arm.order_seed is the seed's own key."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    kept = {k: v for k, v in raw.items() if k not in (*VOLATILE, *drop)}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]
