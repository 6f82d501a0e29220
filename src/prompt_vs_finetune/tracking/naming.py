"""What a run is called and tagged: its name (what sets it apart from its neighbours, seeds
aside), its params (the config flattened, secrets redacted) and its tags (to filter and group
by: arm, cell, variant, the sweep or DVC stage it came from, the code's commit)."""

import os
import re

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ..provenance import CELL_FREE, _clip, code_version, config_hash, git_tags
from ..tasks.task_types import task_type
from .secrets import redact

MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
# characters MLflow refuses in a param key (Banking77 has a label "reverted_card_payment?")
_BAD_KEY_CHARS = re.compile(r"[^\w\-. :/]")


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """{'a': {'b': 1}} -> {'a.b': '1'}; lists become their string form."""
    flat = {}
    for key, value in config.items():
        name = _BAD_KEY_CHARS.sub("_", f"{prefix}{key}")
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            text = str(value)
            if len(text) > MAX_PARAM_CHARS:
                text = text[:MAX_PARAM_CHARS - 3] + "..."
            flat[name] = text
    return flat


def hpo_trial() -> bool:
    """Whether this job is a trial of a hyper-parameter search (an optimising sweeper): its
    test metrics are not the experiment's, only the trial chosen on validation is."""
    if not HydraConfig.initialized():
        return False
    sweeper = HydraConfig.get().sweeper
    return "optuna" in str(sweeper.get("_target_", "")).lower()


NAME_JOIN = " · "


def prompt_label(task) -> str | None:
    """The prompt as a run name shows it: its name when not `default`, `custom prompt` for a
    task.template of one's own; None for the default template."""
    templates = task.templates or {}
    if task.template is not None and task.template != templates.get(task.prompt):
        return "custom prompt"
    return None if task.prompt in (None, "default") else str(task.prompt)


def variant_name(cfg: DictConfig) -> str:
    """What sets a job apart from its neighbours, seeds aside (the experiment is the task
    already): the arm, with k when it shows demonstrations (and their order when it is not the
    seed's), the prompt when not `default`, the label budget when set, the model, a reduced
    inference dtype, and the DVC experiment. E.g. `few_shot k=4 · question · n=64 · tiny`."""
    arm = str(cfg.arm.name)
    if cfg.arm.demos:
        arm += f" k={cfg.arm.k}"
        if cfg.arm.get("order_seed") is not None and cfg.arm.order_seed != cfg.seed:
            arm += f" order{cfg.arm.order_seed}"
    parts = [arm, prompt_label(cfg.task), "chat" if cfg.prompt.chat else None,
             None if cfg.train_size is None else f"n={cfg.train_size}", str(cfg.model.name),
             None if cfg.model.api or cfg.inference_dtype == "float32"
             else str(cfg.inference_dtype),
             os.environ.get("DVC_EXP_NAME")]  # dvc exp run -S edits files, not overrides
    return NAME_JOIN.join(p for p in parts if p)


def run_name(cfg: DictConfig) -> str:
    """The run's name: `mlflow.run_name` when one is set, else the variant and the seed (and
    the trial number in a hyper-parameter search), e.g. `few_shot k=4 · question · n=64 ·
    tiny · seed0`."""
    if cfg.mlflow.get("run_name"):
        return str(cfg.mlflow.run_name)
    name = f"{variant_name(cfg)}{NAME_JOIN}seed{cfg.seed}"
    if hpo_trial():
            name += f"{NAME_JOIN}trial {HydraConfig.get().job.num}"
    return name


def job_params(cfg: DictConfig) -> dict[str, str]:
    """The resolved config as params a person can read: every key that can change the result,
    flattened, with secrets replaced by ***; not the label map (Banking77: 77 params; the job
    logs their count, `task.n_labels`, and a hash, `task.labels_hash`; config.yaml holds the
    map), the templates not chosen (`task.template` is the one used), nor a classification
    task's `decoding` (only generation decodes). `mlflow.run_name` is the name the run got."""
    resolved = redact(OmegaConf.to_container(cfg, resolve=True))
    task = {k: v for k, v in resolved["task"].items() if k not in ("labels", "templates")}
    mlflow_cfg = {**resolved["mlflow"], "run_name": run_name(cfg)}
    params = {**resolved, "task": task, "mlflow": mlflow_cfg}
    if not task_type(cfg.task.type).decodes:
        params.pop("decoding", None)
    return flatten(params)


def redact_override(override: str) -> str:
    """`key=value` from the command line with the value redacted as the config is: *** under a
    secret-looking key, a URI's password and a URL's key in the query string."""
    key, eq, value = override.partition("=")
    if not eq:
        return redact(override)
    leaf = key.lstrip("+~").split(".")[-1]
    return f"{key}={redact({leaf: value})[leaf]}"


def _source(source) -> str:
    """A config source as a folder's path (file://), else `scheme://path`."""
    return source.path if source.schema == "file" else f"{source.schema}://{source.path}"


def hydra_tags() -> dict[str, str]:
    """`overrides`: the job's command-line overrides, one readable line (redacted);
    `config_source`: the folder Hydra composed the config from (and `config_searchpath`, the
    folders searched after it). Nothing outside a Hydra app (tests composing directly)."""
    if not HydraConfig.initialized():
        return {}
    hydra = HydraConfig.get()
    tags = {}
    overrides = [redact_override(o) for o in hydra.overrides.task]
    if overrides:
        tags["overrides"] = _clip(" ".join(overrides), 5000)
    sources = [s for s in hydra.runtime.config_sources if s.provider not in ("hydra", "schema")]
    main = [_source(s) for s in sources if s.provider == "main"]
    others = [_source(s) for s in sources if s.provider != "main"]
    if main or others:
        tags["config_source"] = (main or others)[0]
    if main and others:
        tags["config_searchpath"] = _clip(" ".join(others), 5000)
    return tags


WARM_START = False  # warm.py sets it in a job forked from a warm worker


# what `dvc repro` and `dvc exp run` tell the stage commands they start
DVC_ENV = {"DVC_STAGE": "dvc_stage", "DVC_EXP_NAME": "dvc_exp",
           "DVC_EXP_BASELINE_REV": "dvc_baseline_rev"}


def dvc_tags() -> dict[str, str]:
    """Under DVC: the stage (`dvc_stage`), and under `dvc exp run` the experiment's name
    (`dvc_exp`) and the commit it started from (`dvc_baseline_rev`)."""
    return {tag: os.environ[var] for var, tag in DVC_ENV.items() if os.environ.get(var)}


def job_tags(cfg: DictConfig) -> dict[str, str]:
    """What a run is, as tags to filter and group by. `fit`: whether the arm trains weights
    (the arm config's own key), which the report uses rather than arm names. `config_hash`:
    the composed config's hash (the resume key); `cell`: the same without the seeds."""
    cell = config_hash(cfg, drop=CELL_FREE)  # runs of one cell differ in their seeds only
    tags = {"arm": cfg.arm.name, "fit": str(bool(cfg.arm.fit)).lower(), "task": cfg.task.name,
            "model": cfg.model.name, "seed": str(cfg.seed), "train_size": str(cfg.train_size),
            "prompt": str(cfg.task.prompt or ""), "k": str(cfg.arm.k),
            "chat": str(bool(cfg.prompt.chat)).lower(),
            "quality_metric": task_type(cfg.task.type).quality,  # what the report ranks by
            # model.tiny builds random weights: its prompting arms are at chance by construction
            "pretrained": str(not cfg.model.get("tiny")).lower(),
            # what the saved view averages over seeds: the name, and the cell it stands for
            # (two learning rates have one name)
            "variant": f"{variant_name(cfg)} #{cell[:8]}",
            "cell": cell, "config_hash": config_hash(cfg),
            "pvf.code": code_version()}  # with config_hash and the data: a rerun's identity
    if hpo_trial():
        tags["hpo_trial"] = "true"
    if not task_type(cfg.task.type).decodes and not cfg.model.api:  # what ranked the labels
        tags["calibration"] = str(cfg.scorer.calibration)
    if not cfg.model.api:  # a hosted model runs at whatever precision its provider uses
        tags["inference_dtype"] = str(cfg.inference_dtype)
    if cfg.study:
        tags["study"] = str(cfg.study)
    if WARM_START:
        tags["warm_start"] = "true"
    return {**tags, **hydra_tags(), **dvc_tags(), **git_tags()}


LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default


def run_address(tracking_uri: str, experiment: str, experiment_id: str, run_id: str) -> str:
    """Where the run went, as a job's last line: the store, the experiment and the run's page
    (a tracking server's own address; for a local store, the address `mlflow ui` serves it
    at, with the command that starts it)."""
    from .store import ML_WORKFLOW

    page = f"#/experiments/{experiment_id}/runs/{run_id}{ML_WORKFLOW}"
    where = redact(tracking_uri)
    if tracking_uri.startswith(("http://", "https://")):
        return f"logged to experiment '{experiment}' at {where}: {where.rstrip('/')}/{page}"
    return (f"logged to experiment '{experiment}' in {where}: {LOCAL_UI}/{page} once "
            f"`mlflow ui --backend-store-uri {where}` runs in this folder")
