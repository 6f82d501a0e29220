"""What a run is called and tagged: name, params, tags and group (docs/tracking.md)."""

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ..tasks.task_types import task_type
from .keys import QUALITY_TAG
from .provenance import CELL_FREE, clip, code_version, config_hash, git_head, git_tags
from .secrets import leaves, redact, redact_override

MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
# characters MLflow refuses in a param key (Banking77 has a label "reverted_card_payment?")
_BAD_KEY_CHARS = re.compile(r"[^\w\-. :/]")
NAME_JOIN = " · "
WARM_START = False  # warm/worker.py sets it in a job forked from a warm worker
# what `dvc repro` and `dvc exp run` tell the stage commands they start
DVC_ENV = {"DVC_STAGE": "dvc_stage", "DVC_EXP_NAME": "dvc_exp",
           "DVC_EXP_BASELINE_REV": "dvc_baseline_rev"}
ML_WORKFLOW = "?workflowType=machine_learning"  # a UI link on the Model training pages
SWEEP_FILE = ".pvf_sweep.json"  # in the sweep folder: the sweep's name (SweepSummary writes it)


@dataclass(frozen=True)
class Group:
    key: str  # finds the parent
    name: str  # the parent run's name
    tags: dict[str, str] = field(default_factory=dict)  # the parent's own tags


@dataclass(frozen=True)
class JobRecord:  # what the job's run records of its config
    name: str
    params: dict[str, str]
    tags: dict[str, str]  # redacted
    config_yaml: str  # the resolved config, redacted: the run's config.yaml
    group: Group | None  # the sweep or study whose parent run it nests under
    task_type: str


def job_record(cfg: DictConfig) -> JobRecord:
    """The run's name, params, tags, config.yaml and group: the whole config is what it logs."""
    arm, task, model, kind = cfg.arm, cfg.task, cfg.model, task_type(cfg.task.type)
    variant = variant_name(arm, task, model, chat=cfg.prompt.chat, seed=cfg.seed,
                           train_size=cfg.train_size, inference_dtype=cfg.inference_dtype)
    name, trial = f"{variant}{NAME_JOIN}seed{cfg.seed}", hpo_trial()
    if trial:
        name += f"{NAME_JOIN}trial {HydraConfig.get().job.num}"
    name = str(cfg.mlflow.get("run_name") or name)
    cell = config_hash(cfg, drop=CELL_FREE)  # the config less its seeds: one experiment
    tags = {"arm": arm.name, "fit": str(bool(arm.fit)).lower(), "task": task.name,
            "model": model.name, "seed": str(cfg.seed), "train_size": str(cfg.train_size),
            "prompt": str(task.prompt or ""), "k": str(arm.k),
            "chat": str(bool(cfg.prompt.chat)).lower(), QUALITY_TAG: kind.quality,
            "pretrained": str(not model.get("tiny")).lower(),
            "pvf.code": code_version(), "config_hash": config_hash(cfg), "cell": cell,
            # the saved view averages a variant over seeds (two learning rates have one name)
            "variant": f"{variant} #{cell[:8]}"}
    some = {"hpo_trial": "true" if trial else None,
            # what ranked the labels; a hosted model runs at whatever precision its provider uses
            "calibration": None if kind.decodes or model.api else cfg.scorer.calibration,
            "inference_dtype": None if model.api else cfg.inference_dtype,
            "study": cfg.study, "warm_start": "true" if WARM_START else None,
            **{tag: os.environ.get(var) for var, tag in DVC_ENV.items()}}
    tags |= {tag: str(value) for tag, value in some.items() if value}  # those that apply
    resolved = redact(OmegaConf.to_container(cfg, resolve=True))
    # params: the run's own name, less what docs/tracking.md says they leave out
    params = {**resolved, "mlflow": {**resolved["mlflow"], "run_name": name}, "task": {
        k: v for k, v in resolved["task"].items() if k not in ("labels", "templates")}}
    if not kind.decodes:
        params.pop("decoding", None)
    return JobRecord(name, flatten(params), redact(tags | hydra_tags() | git_tags()),
                     OmegaConf.to_yaml(OmegaConf.create(resolved)), job_group(cfg.study),
                     cfg.task.type)


def hpo_trial() -> bool:  # a trial of an optimising sweeper (keys.TAGS)
    return HydraConfig.initialized() and \
        "optuna" in str(HydraConfig.get().sweeper.get("_target_", "")).lower()


def flatten(config: dict) -> dict[str, str]:
    """{'a': {'b': [1]}} -> {'a.b': '[1]'}, as MLflow takes params."""
    return {_BAD_KEY_CHARS.sub("_", path): clip(text, MAX_PARAM_CHARS)
            for path, text in leaves(config, into=dict)}


def variant_name(arm, task, model, *, chat: bool, seed: int, train_size: int | None,
                 inference_dtype: str) -> str:
    """What sets a job apart from its neighbours, seeds aside: `few_shot k=4 · question · tiny`."""
    name = str(arm.name)
    if arm.demos:
        name += f" k={arm.k}"
        if arm.get("order_seed") is not None and arm.order_seed != seed:
            name += f" order{arm.order_seed}"
    if task.template is not None and task.template != (task.templates or {}).get(task.prompt):
        prompt = "custom prompt"
    else:
        prompt = None if task.prompt in (None, "default") else str(task.prompt)
    parts = [name, prompt, "chat" if chat else None,
             None if train_size is None else f"n={train_size}", str(model.name),
             None if model.api or inference_dtype == "float32" else str(inference_dtype),
             os.environ.get("DVC_EXP_NAME")]  # dvc exp run -S edits files, not overrides
    return NAME_JOIN.join(p for p in parts if p)


def hydra_tags() -> dict[str, str]:
    """The tags `overrides` (redacted), `config_source` and `config_searchpath` (keys.TAGS)."""
    if not HydraConfig.initialized():  # tests composing the config directly
        return {}
    hydra, tags = HydraConfig.get(), {}
    if overrides := [redact_override(o) for o in hydra.overrides.task]:
        tags["overrides"] = clip(" ".join(overrides))
    main, others = [], []
    for s in hydra.runtime.config_sources:
        if s.provider not in ("hydra", "schema"):
            path = s.path if s.schema == "file" else f"{s.schema}://{s.path}"
            (main if s.provider == "main" else others).append(path)
    if main or others:
        tags["config_source"] = (main or others)[0]
    if main and others:
        tags["config_searchpath"] = clip(" ".join(others))
    return tags


def run_address(tracking_uri: str, experiment: str, experiment_id: str, run_id: str) -> str:
    """The job's last line: the store, the experiment and the run's page."""
    page, where = f"#/experiments/{experiment_id}/runs/{run_id}{ML_WORKFLOW}", redact(tracking_uri)
    if tracking_uri.startswith(("http://", "https://")):
        return f"logged to experiment '{experiment}' at {where}: {where.rstrip('/')}/{page}"
    return (f"logged to experiment '{experiment}' in {where}: http://127.0.0.1:5000/{page} once "
            f"`mlflow ui --backend-store-uri {where}` runs in this folder")


def _key(text: str) -> str:  # safe inside a search filter's quotes
    return re.sub(r"['\"\\\\]", "_", text)


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_group(study: str | None) -> Group | None:
    """The sweep or study this job belongs to, or None (a single job)."""
    if not in_multirun():  # a study names itself, or is any job DVC starts
        dvc = os.environ.get("DVC_STAGE") or os.environ.get("DVC_ROOT")
        return study_group(str(study or dvc_study_name())) if study or dvc else None
    folder = Path(HydraConfig.get().sweep.dir).resolve()
    try:
        info = json.loads((folder / SWEEP_FILE).read_text())
    except (OSError, ValueError):  # SweepSummary is not among the callbacks
        info = {}
    tags = {"pvf.kind": "sweep", "sweep_dir": str(folder)}
    if info.get("overrides"):
        tags["overrides"] = info["overrides"]
    return Group(_key(f"sweep:{folder}"), info.get("name") or f"sweep {folder.name}", tags)


def study_group(study: str) -> Group:
    """`study <name> (<dvc experiment>)`, or `(git <commit>)` outside `dvc exp run`."""
    tags, key, name = {"pvf.kind": "study", "study": study}, f"study:{study}", f"study {study}"
    if experiment := os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp"] = experiment
        key, name = f"{key}:exp:{experiment}", f"{name} ({experiment})"
    elif commit := git_head():
        tags["git_commit"] = commit
        key, name = f"{key}:git:{commit}", f"{name} (git {commit[:8]})"
    return Group(_key(key), name, tags)


def dvc_study_name() -> str:
    """A DVC stage's study when none is named: its pipeline's folder, else `default` (root)."""
    path, sep, _ = os.environ.get("DVC_STAGE", "").rpartition(":")
    return (Path(path).parent.name if sep and "/" in path else "") or "default"
