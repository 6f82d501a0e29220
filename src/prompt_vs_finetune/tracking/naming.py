"""What a run is called and tagged: its name (what sets it apart from its neighbours, seeds
aside), its params (the config flattened, secrets redacted) and its tags (to filter and group
by: arm, cell, variant, the sweep or DVC stage it came from, the code's commit)."""

import os
import re

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ..tasks.task_types import task_type
from .provenance import CELL_FREE, clip, code_version, config_hash, git_tags
from .secrets import redact, redact_override

MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
# characters MLflow refuses in a param key (Banking77 has a label "reverted_card_payment?")
_BAD_KEY_CHARS = re.compile(r"[^\w\-. :/]")
NAME_JOIN = " · "
WARM_START = False  # warm/worker.py sets it in a job forked from a warm worker
# what `dvc repro` and `dvc exp run` tell the stage commands they start
DVC_ENV = {"DVC_STAGE": "dvc_stage", "DVC_EXP_NAME": "dvc_exp",
           "DVC_EXP_BASELINE_REV": "dvc_baseline_rev"}
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default
# MLflow UI links that open on the Model training pages whatever the browser last chose
ML_WORKFLOW = "?workflowType=machine_learning"


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def hpo_trial() -> bool:
    """Whether this job is a trial of an optimising sweeper: its test metrics are not the
    experiment's, only the trial chosen on validation is."""
    return HydraConfig.initialized() and \
        "optuna" in str(HydraConfig.get().sweeper.get("_target_", "")).lower()


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """{'a': {'b': 1}} -> {'a.b': '1'}; lists become their string form."""
    flat = {}
    for key, value in config.items():
        name = _BAD_KEY_CHARS.sub("_", f"{prefix}{key}")
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = clip(str(value), MAX_PARAM_CHARS)
    return flat


def variant_name(cfg: DictConfig) -> str:
    """What sets a job apart from its neighbours, seeds aside: the arm, with k when it shows
    demonstrations (and their order when not the seed's), the prompt when not `default` (or
    `custom prompt`), the label budget, the model, a reduced inference dtype and the DVC
    experiment. E.g. `few_shot k=4 · question · n=64 · tiny`."""
    arm, task = str(cfg.arm.name), cfg.task
    if cfg.arm.demos:
        arm += f" k={cfg.arm.k}"
        if cfg.arm.get("order_seed") is not None and cfg.arm.order_seed != cfg.seed:
            arm += f" order{cfg.arm.order_seed}"
    if task.template is not None and task.template != (task.templates or {}).get(task.prompt):
        prompt = "custom prompt"
    else:
        prompt = None if task.prompt in (None, "default") else str(task.prompt)
    parts = [arm, prompt, "chat" if cfg.prompt.chat else None,
             None if cfg.train_size is None else f"n={cfg.train_size}", str(cfg.model.name),
             None if cfg.model.api or cfg.inference_dtype == "float32"
             else str(cfg.inference_dtype),
             os.environ.get("DVC_EXP_NAME")]  # dvc exp run -S edits files, not overrides
    return NAME_JOIN.join(p for p in parts if p)


def run_name(cfg: DictConfig) -> str:
    """`mlflow.run_name` when set, else the variant and the seed (and the trial number in a
    hyper-parameter search), e.g. `few_shot k=4 · question · n=64 · tiny · seed0`."""
    if cfg.mlflow.get("run_name"):
        return str(cfg.mlflow.run_name)
    name = f"{variant_name(cfg)}{NAME_JOIN}seed{cfg.seed}"
    if hpo_trial():
        name += f"{NAME_JOIN}trial {HydraConfig.get().job.num}"
    return name


def job_params(cfg: DictConfig) -> dict[str, str]:
    """The resolved config, flattened and redacted, less the label map (Banking77: 77 params;
    `task.n_labels` and `task.labels_hash` stand for it, config.yaml holds it), the templates
    not chosen, and a classification task's `decoding`; `mlflow.run_name` is the run's name."""
    resolved = redact(OmegaConf.to_container(cfg, resolve=True))
    task = {k: v for k, v in resolved["task"].items() if k not in ("labels", "templates")}
    mlflow_cfg = {**resolved["mlflow"], "run_name": run_name(cfg)}
    params = {**resolved, "task": task, "mlflow": mlflow_cfg}
    if not task_type(cfg.task.type).decodes:
        params.pop("decoding", None)
    return flatten(params)


def _source(source) -> str:
    return source.path if source.schema == "file" else f"{source.schema}://{source.path}"


def hydra_tags() -> dict[str, str]:
    """`overrides`: the command line's overrides (redacted); `config_source`: the folder Hydra
    composed the config from, and `config_searchpath`: those searched after it."""
    if not HydraConfig.initialized():  # tests composing the config directly
        return {}
    hydra, tags = HydraConfig.get(), {}
    overrides = [redact_override(o) for o in hydra.overrides.task]
    if overrides:
        tags["overrides"] = clip(" ".join(overrides))
    sources = [s for s in hydra.runtime.config_sources if s.provider not in ("hydra", "schema")]
    main = [_source(s) for s in sources if s.provider == "main"]
    others = [_source(s) for s in sources if s.provider != "main"]
    if main or others:
        tags["config_source"] = (main or others)[0]
    if main and others:
        tags["config_searchpath"] = clip(" ".join(others))
    return tags


def job_tags(cfg: DictConfig) -> dict[str, str]:
    """What a run is, as tags to filter and group by. `fit`: whether the arm trains weights,
    which the report uses rather than arm names. `config_hash`: the composed config's hash
    (the resume key); `cell`: the same without the seeds."""
    cell = config_hash(cfg, drop=CELL_FREE)
    kind = task_type(cfg.task.type)
    tags = {"arm": cfg.arm.name, "fit": str(bool(cfg.arm.fit)).lower(), "task": cfg.task.name,
            "model": cfg.model.name, "seed": str(cfg.seed), "train_size": str(cfg.train_size),
            "prompt": str(cfg.task.prompt or ""), "k": str(cfg.arm.k),
            "chat": str(bool(cfg.prompt.chat)).lower(),
            "quality_metric": kind.quality,  # what the report ranks by
            # model.tiny builds random weights: its prompting arms are at chance by construction
            "pretrained": str(not cfg.model.get("tiny")).lower(),
            # what the saved view averages over seeds (two learning rates have one name)
            "variant": f"{variant_name(cfg)} #{cell[:8]}",
            "cell": cell, "config_hash": config_hash(cfg),
            "pvf.code": code_version()}  # with config_hash and the data: a rerun's identity
    if hpo_trial():
        tags["hpo_trial"] = "true"
    if not kind.decodes and not cfg.model.api:  # what ranked the labels
        tags["calibration"] = str(cfg.scorer.calibration)
    if not cfg.model.api:  # a hosted model runs at whatever precision its provider uses
        tags["inference_dtype"] = str(cfg.inference_dtype)
    if cfg.study:
        tags["study"] = str(cfg.study)
    if WARM_START:
        tags["warm_start"] = "true"
    dvc = {tag: os.environ[var] for var, tag in DVC_ENV.items() if os.environ.get(var)}
    return {**tags, **hydra_tags(), **dvc, **git_tags()}


def run_address(tracking_uri: str, experiment: str, experiment_id: str, run_id: str) -> str:
    """Where the run went, as a job's last line: the store, the experiment and the run's page
    (a tracking server's own address; for a local store, the address `mlflow ui` serves it
    at, with the command that starts it)."""
    page = f"#/experiments/{experiment_id}/runs/{run_id}{ML_WORKFLOW}"
    where = redact(tracking_uri)
    if tracking_uri.startswith(("http://", "https://")):
        return f"logged to experiment '{experiment}' at {where}: {where.rstrip('/')}/{page}"
    return (f"logged to experiment '{experiment}' in {where}: {LOCAL_UI}/{page} once "
            f"`mlflow ui --backend-store-uri {where}` runs in this folder")
