"""The up-front check: every config value a job reads, refused with one line (the key, what is
wrong, the fix) before any data, model or run exists. A value that would fail late (after a
whole fine-tune) or silently (a sampling temperature of 0) fails here instead.

Backends add their own (`Backend.check`: an API key, a dtype the device cannot run).
"""

import math
import os
import tempfile
from numbers import Real
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .errors import UserError
from .models.precision import INFERENCE_DTYPES
from .project import name_error
from .tasks import task_type
from .tracking.secrets import leaked_secret

SELECTIONS = ("random", "class_balanced")
EMPTY_ROWS = ("drop", "error")
OVERLAP = ("warn", "error")
MAX_SEED = 2**32 - 1  # numpy's seed range, which Lightning's seed_everything keeps to


def _number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Checker:
    """Reads `key` from the config and raises one UserError naming it."""

    MAX_SEED = MAX_SEED

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg

    def value(self, key: str):
        node = self.cfg
        for part in key.split("."):
            node = node[part]
        return node

    def fail(self, key: str, problem: str, fix: str):
        raise UserError(f"{key}={self.value(key)!r} {problem}; {fix}")

    def integer(self, key: str, low: int = 0, high: int | None = None, null: bool = False,
                fix: str = ""):
        value = self.value(key)
        if value is None and null:
            return
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        if not _integer(value):
            self.fail(key, "is not a whole number", fix or f"use a whole number {bounds}")
        if value < low or (high is not None and value > high):
            self.fail(key, f"is not {bounds}", fix or f"use {bounds}")

    def number(self, key: str, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False, fix: str = ""):
        value = self.value(key)
        if not _number(value):
            self.fail(key, "is not a number", fix or f"set {key} to a number, e.g. {key}=0.1")
        if (low is not None and (value < low or (low_open and value == low))) or \
                (high is not None and (value > high or (high_open and value == high))):
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            bounds = (f"{left}{low if low is not None else '-inf'}, "
                      f"{high if high is not None else 'inf'}{right}")
            self.fail(key, f"is outside {bounds}", fix or f"use a value in {bounds}")

    def choice(self, key: str, options: tuple[str, ...]):
        if self.value(key) not in options:
            self.fail(key, "is unknown", f"use one of {', '.join(options)}")

    def boolean(self, *keys: str):
        for key in keys:
            if not isinstance(self.value(key), bool):
                self.fail(key, "is not true or false", f"set {key}=true or {key}=false")


def check_config(cfg: DictConfig) -> None:
    """Every value the job reads, before any work. Raises UserError."""
    c = _Checker(cfg)
    for key in ("task.name", "arm.name", "model.name"):
        if not isinstance(c.value(key), str) or not c.value(key).strip():
            c.fail(key, "is not set", f"give the {key.split('.')[0]}'s YAML file a `name:`")
    if problem := name_error(cfg):
        raise UserError(problem)
    _check_no_secret(cfg)
    c.integer("seed", 0, MAX_SEED)
    c.integer("data_seed", 0, MAX_SEED)
    train_size = cfg.train_size
    if train_size not in (None, "all") and not (_integer(train_size) and train_size >= 2):
        c.fail("train_size", "is not a label budget", "use a whole number >= 2, or all")
    c.integer("test_size", 1, null=True)
    c.choice("inference_dtype", INFERENCE_DTYPES)
    c.boolean("compile", "resume", "cache_predictions", "prompt.chat")
    if cfg.prompt.system is not None and not isinstance(cfg.prompt.system, str):
        c.fail("prompt.system", "is not text", "quote the system message, or set it to null")
    c.integer("resume_every_n_steps", 1)
    if not str(cfg.mlflow.experiment_name or "").strip():
        c.fail("mlflow.experiment_name", "is empty", "name the MLflow experiment")
    _check_mlflow(c)
    if cfg.model.get("api"):
        _check_api(c)
    _check_cost(cfg)
    _check_task(c)
    _check_arm(c)
    _check_identity(cfg)
    task_type(cfg.task.type).check_config(c)
    c.integer("model.max_length", 1, null=True)
    tiny = cfg.model.tiny
    if tiny and cfg.model.max_length and cfg.model.max_length > tiny.n_positions:
        c.fail("model.max_length", f"is beyond the {tiny.n_positions} positions of model=tiny",
               "lower it, or set model.max_length=null")


def _check_mlflow(c: _Checker) -> None:
    """The logging switches (a project's conf/ from before them may lack them: off)."""
    cfg = c.cfg
    for key in ("system_metrics", "log_model"):
        if key in cfg.mlflow:
            c.boolean(f"mlflow.{key}")
    if not (cfg.mlflow.get("log_model") and cfg.arm.fit):
        return
    if cfg.inference_dtype == "int8":
        c.fail("inference_dtype", "leaves weights that cannot be saved as a model (mlflow."
               "log_model=true logs the fine-tuned model as scored)",
               "score in float32, bfloat16 or float16, or set mlflow.log_model=false")
    strategy = cfg.trainer.get("strategy")
    target = strategy if isinstance(strategy, str) else str((strategy or {}).get("_target_", ""))
    if "fsdp" in target.lower():
        c.fail("mlflow.log_model", "needs the whole model in one process, and trainer=fsdp "
               "shards it", "fine-tune with trainer=ddp or one device to log the model, or set "
               "mlflow.log_model=false")


def _check_api(c: _Checker) -> None:
    """A hosted model's client: every request has a finite deadline (timeout x retries), so
    no job waits forever on an endpoint that does not answer."""
    c.number("model.api.timeout_s", 0, 3600, low_open=True,
             fix="set model.api.timeout_s to the seconds one request may take, e.g. 60")
    c.integer("model.api.max_retries", 0, 20)
    c.integer("model.api.max_concurrency", 1, 256)
    c.integer("model.api.label_max_tokens", 1)
    if "temperature" in c.cfg.model.api:  # the Messages API takes none
        c.number("model.api.temperature", 0, 2)


def _check_no_secret(cfg: DictConfig) -> None:
    """No config value holds a secret from the environment (keys are read where they are
    used, never through the config: a label would send one in every prompt)."""
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 - a value that cannot resolve yet (Hydra's own, in tests)
        return
    if leak := leaked_secret(resolved, dict(os.environ)):
        key, variable = leak
        raise UserError(f"{key} holds the value of ${variable}; a secret is read from the "
                        "environment where it is used, never through a config value: remove "
                        "the interpolation")


def _check_cost(cfg: DictConfig) -> None:
    """Every price and rate under `cost` (the hardware's, each model's token prices): a
    negative one would report negative dollars, a zero rate infinite ones."""
    def walk(node, path: str):
        for key, value in node.items():
            name = f"{path}.{key}"
            if isinstance(value, DictConfig):
                walk(value, name)
            elif isinstance(value, bool) or not isinstance(value, Real):
                continue
            elif value < 0 or (value == 0 and "per_second" in key):
                need = "> 0" if "per_second" in key else ">= 0"
                raise UserError(f"{name}={value} is not {need}; a price cannot be negative, "
                                f"nor a rate zero (set {name} to a value {need})")

    walk(cfg.cost, "cost")


def _check_task(c: _Checker) -> None:
    kind = task_type(c.cfg.task.type)
    if not c.cfg.task.metrics:
        c.fail("task.metrics", "is not set", "list them, e.g. [accuracy, macro_f1] or [rouge] "
               "(or extend _intent / _summarization, which do)")
    unknown = [m for m in c.cfg.task.metrics if m not in kind.metric_names]
    if unknown:
        c.fail("task.metrics", f"names {', '.join(map(str, unknown))}, not a "
               f"{c.cfg.task.type} metric", f"use {', '.join(kind.metric_names)}")
    c.choice("task.empty_rows", EMPTY_ROWS)
    c.choice("task.overlap", OVERLAP)
    # the validation share of a label budget, carved from train or from the task's own split
    c.number("task.val_fraction", 0, 1, low_open=True, high_open=True)
    _check_templates(c.cfg.task)


def _check_templates(task: DictConfig) -> None:
    """The template a job will use (task.template, or the one task.prompt names) and the
    target template hold the placeholders they are filled through."""
    template = task.template
    if template is None:  # null: the template named by task.prompt
        if task.prompt not in (task.templates or {}):
            raise UserError(f"task.prompt '{task.prompt}' is not one of task.templates "
                            f"({', '.join(task.templates or {}) or 'none'}); pick one or "
                            "set task.template")
        template = task.templates[task.prompt]
    if "{text}" not in template:
        raise UserError(f"task.template has no {{text}} placeholder: {template!r}; add "
                        "{text} where the input goes")
    if "{answer}" not in task.target_template:
        raise UserError(f"task.target_template has no {{answer}} placeholder: "
                        f"{task.target_template!r}; add {{answer}} where the label or "
                        "summary goes")


def _check_arm(c: _Checker) -> None:
    arm = c.cfg.arm
    c.boolean("arm.fit", "arm.demos")
    c.integer("arm.k", 0)
    if arm.demos and arm.k == 0:
        c.fail("arm.k", f"leaves arm={arm.name} without demonstrations",
               "use arm.k >= 1, or arm=zero_shot for a prompt without them")
    c.choice("arm.selection", SELECTIONS)
    c.integer("arm.order_seed", 0, MAX_SEED, null=True)
    if not arm.fit:
        return
    source = "model.finetune_lr" if arm.lora is None else "model.lora_lr"
    c.number("arm.lr", 0, low_open=True, fix=f"set arm.lr > 0 (or {source})")
    c.number("arm.weight_decay", 0)
    c.number("arm.warmup_ratio", 0, 1, high_open=True)
    c.integer("arm.batch_size", 1)
    c.integer("arm.max_epochs", 1, fix="set model.max_epochs (or arm.max_epochs) >= 1")
    c.integer("arm.min_steps", 1, null=True)
    c.boolean("arm.group_by_length")
    c.integer("arm.pack_length", 2, null=True)
    c.integer("trainer.max_epochs", 1)
    c.integer("trainer.accumulate_grad_batches", 1)
    if arm.lora is not None:
        c.integer("arm.lora.r", 1)
        c.number("arm.lora.alpha", 0, low_open=True)
        c.number("arm.lora.dropout", 0, 1, high_open=True)
        if not arm.lora.target_modules:
            c.fail("arm.lora.target_modules", "is empty",
                   "name the modules to adapt (model.lora_target_modules)")
        if isinstance(arm.lora.target_modules, str):  # would be adapted letter by letter
            c.fail("arm.lora.target_modules", "is one string, not a list",
                   f"give a list: arm.lora.target_modules=[{arm.lora.target_modules}]")


def _check_identity(cfg: DictConfig) -> None:
    """An arm stays what its file says it is: whether it trains, whether a prompting arm shows
    demonstrations, whether it trains adapters or has a teacher. An override that changes one
    of these would run another arm under this one's name (and the report would believe it)."""
    from .project import compose_options

    arm = cfg.arm
    try:
        own = compose_options([f"arm={arm.name}"]).arm
    except Exception:  # noqa: BLE001 - no file of that name: an arm of the user's own naming
        return
    keys = {"fit": (own.fit, arm.fit)}
    if not own.fit:
        keys["demos"] = (own.demos, arm.demos)
    if own.get("teacher") is None:  # a hybrid's lora comes from its student's arm file
        keys["lora"] = (own.lora is not None, arm.lora is not None)
    keys["teacher"] = (own.get("teacher") is not None, arm.get("teacher") is not None)
    for key, (theirs, given) in keys.items():
        if theirs != given:
            value = "null" if key in ("lora", "teacher") and not given else str(given).lower()
            shown = f"arm.{key}={value}"
            raise UserError(f"{shown} makes arm={arm.name} another arm under its name; pick "
                            "the arm that is that (zero_shot, few_shot, full_finetune, lora, "
                            "hybrid), or give your variant its own arm.name")


def check_writable(cfg: DictConfig) -> None:
    """The output folder and the results file's folder take files, before any work."""
    if cfg.results_file and Path(cfg.results_file).is_dir():
        raise UserError(f"results_file={cfg.results_file} is a folder; name a file in it, "
                        "e.g. results_file=<folder>/metrics.json")
    for what, folder in (("paths.output_dir (hydra.run.dir)", cfg.paths.output_dir),
                         ("results_file", Path(cfg.results_file).parent
                          if cfg.results_file else None)):
        if folder is None:
            continue
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as err:
            raise UserError(f"cannot write to {folder} ({what}): {err.strerror}; point it at "
                            "a writable folder") from err
