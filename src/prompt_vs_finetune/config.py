"""The config a job runs: `fill_inherited` fills what one group takes from another; a value
that would fail late or silently (a temperature of 0) is refused in one line before any work."""

import logging
import math
import os
import tempfile
from collections import namedtuple
from numbers import Real
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from .errors import UserError
from .project import compose_options, name_error
from .tasks import task_type
from .tracking.secrets import leaked_secret

log = logging.getLogger(__name__)
INFERENCE_DTYPES = ("float32", "float16", "bfloat16", "int8")  # models/precision.py casts to
STUDENTS = {"full": "full_finetune", "lora": "lora"}  # hybrid: arm.student -> its arm file
STUDENT_KEYS = ("weight_decay", "warmup_ratio", "lora")  # null in hybrid.yaml: the student's
MAX_SEED = 2**32 - 1  # numpy's seed range, which Lightning's seed_everything keeps to
_ABSENT = object()
# a table maps keys to rules, checked in order: ok(value), else "{key}={value!r} {problem}; {fix}"
Rule = namedtuple("Rule", "ok problem fix")

# a null key -> the key it takes its value from, filled in this order where the key exists
FILLS = {"arm.lora.r": "model.lora_r", "arm.lora.target_modules": "model.lora_target_modules",
         "arm.max_epochs": "model.max_epochs", "arm.min_steps": "model.min_steps",
         "trainer.max_epochs": "arm.max_epochs", "decoding.max_new_tokens": "task.max_new_tokens"}


def fill_inherited(cfg: DictConfig) -> None:
    """Fill the nulls one group takes from another (arm.order_seed, decoding.seed: `seed_or`)."""
    arm = cfg.arm
    if arm.get("teacher") is not None:  # hybrid: the student's nulls from its own arm file
        if arm.student not in STUDENTS:
            raise UserError(f"arm.student={arm.student!r} is not one of {', '.join(STUDENTS)}; "
                            "pick full or lora")
        missing = [key for key in STUDENT_KEYS if arm[key] is None
                   and (key != "lora" or arm.student == "lora")]
        student = compose_options([f"arm={STUDENTS[arm.student]}"]).arm if missing else None
        with open_dict(arm):
            for key in missing:
                arm[key] = student[key]
    if arm.lr is None and arm.fit:
        arm.lr = cfg.model.finetune_lr if arm.lora is None else cfg.model.lora_lr
    for key, source in FILLS.items():
        if OmegaConf.select(cfg, key, default=_ABSENT) is None:
            OmegaConf.update(cfg, key, OmegaConf.select(cfg, source), merge=False)
    if cfg.task.template is None and cfg.task.prompt in (cfg.task.templates or {}):
        cfg.task.template = cfg.task.templates[cfg.task.prompt]
    if not arm.demos and arm.k != 0:  # the arm.k a sweep gives every arm
        log.info("arm=%s shows no demonstrations: arm.k=%s ignored (arm.demos=true uses them)",
                 arm.name, arm.k)
        arm.k = 0


def seed_or(value, seed: int) -> int:
    """A seed-linked value (arm.order_seed, decoding.seed), or the job's seed where null."""
    return int(seed if value is None else value)


def one_device(trainer_cfg) -> bool:
    """`devices` 1, auto or unset: several need trainer=ddp and share no prediction cache."""
    return str(trainer_cfg.get("devices", 1)) in ("1", "auto", "None")


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def whole(low=0, high=None, null=False, fix=""):
    """A whole number in low..high (no high: >= low), or null where `null`."""
    bounds = f"{low}..{high}" if high is not None else f">= {low}"
    return (Rule(lambda v: (null and v is None) or _integer(v), "is not a whole number",
                 fix or f"use a whole number {bounds}"),
            Rule(lambda v: (null and v is None) or low <= v and (high is None or v <= high),
                 f"is not {bounds}", fix or f"use {bounds}"))


def real(low=None, high=None, low_open=False, high_open=False, fix=""):
    """A finite number from low to high, each end included unless open."""
    bounds = (f"{'(' if low_open else '['}{'-inf' if low is None else low}, "
              f"{'inf' if high is None else high}{')' if high_open else ']'}")
    return (Rule(lambda v: isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v),
                 "is not a number", fix or "set {key} to a number, e.g. {key}=0.1"),
            Rule(lambda v: (low is None or v > low or (v == low and not low_open))
                 and (high is None or v < high or (v == high and not high_open)),
                 f"is outside {bounds}", fix or f"use a value in {bounds}"))


def one_of(options: tuple[str, ...]):
    return (Rule(lambda v: v in options, "is unknown", f"use one of {', '.join(options)}"),)


BOOL = (Rule(lambda v: isinstance(v, bool), "is not true or false",
             "set {key}=true or {key}=false"),)
OPTIONAL = {"mlflow.system_metrics", "mlflow.log_model", "model.api.temperature"}  # may lack


class _Checker:
    """Raises one UserError naming a key. Task types call its shorthands (`integer`...)."""

    MAX_SEED = MAX_SEED

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg

    def value(self, key: str):  # a key missing from conf/ raises OmegaConf's error (cli names it)
        node = self.cfg
        for part in key.split("."):
            node = node[part]
        return node

    def fail(self, key: str, problem: str, fix: str):
        raise UserError(f"{key}={self.value(key)!r} {problem}; {fix}")

    def check(self, table: dict) -> None:
        for key, rules in table.items():
            if key in OPTIONAL and OmegaConf.select(self.cfg, key, default=_ABSENT) is _ABSENT:
                continue
            value = self.value(key)
            for rule in rules:
                if not rule.ok(value):
                    self.fail(key, rule.problem, rule.fix.format(key=key, value=value))

    def integer(self, key: str, *args, **kwargs):
        self.check({key: whole(*args, **kwargs)})

    def number(self, key: str, *args, **kwargs):
        self.check({key: real(*args, **kwargs)})

    def choice(self, key: str, options: tuple[str, ...]):
        self.check({key: one_of(options)})

    def boolean(self, *keys: str):
        self.check(dict.fromkeys(keys, BOOL))


NAMES = {f"{group}.name": (Rule(lambda v: isinstance(v, str) and v.strip(), "is not set",
                                f"give the {group}'s YAML file a `name:`"),)
         for group in ("task", "arm", "model")}
JOB = {"seed": whole(0, MAX_SEED), "data_seed": whole(0, MAX_SEED),
       "train_size": (Rule(lambda v: v in (None, "all") or (_integer(v) and v >= 2),
                           "is not a label budget", "use a whole number >= 2, or all"),),
       "test_size": whole(1, null=True), "inference_dtype": one_of(INFERENCE_DTYPES),
       "compile": BOOL, "resume": BOOL, "cache_predictions": BOOL, "prompt.chat": BOOL,
       "prompt.system": (Rule(lambda v: v is None or isinstance(v, str), "is not text",
                              "quote the system message, or set it to null"),),
       "resume_every_n_steps": whole(1),
       "mlflow.experiment_name": (Rule(lambda v: str(v or "").strip(), "is empty",
                                       "name the MLflow experiment"),),
       "mlflow.system_metrics": BOOL, "mlflow.log_model": BOOL}
# A hosted model's client: every request has a finite deadline (timeout x retries).
API = {"model.api.timeout_s": real(0, 3600, low_open=True, fix="set model.api.timeout_s to "
                                   "the seconds one request may take, e.g. 60"),
       "model.api.max_retries": whole(0, 20), "model.api.max_concurrency": whole(1, 256),
       "model.api.label_max_tokens": whole(1), "model.api.temperature": real(0, 2)}
TASK = {"task.empty_rows": one_of(("drop", "error")), "task.overlap": one_of(("warn", "error")),
        "task.val_fraction": real(0, 1, low_open=True, high_open=True)}
ARM = {"arm.fit": BOOL, "arm.demos": BOOL, "arm.k": whole(0),
       "arm.selection": one_of(("random", "class_balanced")),
       "arm.order_seed": whole(0, MAX_SEED, null=True)}
FIT = {"arm.weight_decay": real(0), "arm.warmup_ratio": real(0, 1, high_open=True),
       "arm.batch_size": whole(1),
       "arm.max_epochs": whole(1, fix="set model.max_epochs (or arm.max_epochs) >= 1"),
       "arm.min_steps": whole(1, null=True), "arm.min_validation": whole(1),
       "arm.group_by_length": BOOL, "trainer.max_epochs": whole(1),
       "trainer.accumulate_grad_batches": whole(1)}
LORA = {"arm.lora.r": whole(1), "arm.lora.alpha": real(0, low_open=True),
        "arm.lora.dropout": real(0, 1, high_open=True),
        "arm.lora.target_modules": (  # one string: adapted letter by letter
            Rule(bool, "is empty", "name the modules to adapt (model.lora_target_modules)"),
            Rule(lambda v: not isinstance(v, str), "is one string, not a list",
                 "give a list: arm.lora.target_modules=[{value}]"))}


def check_config(cfg: DictConfig) -> None:
    """Every value the job reads, before any work. Raises UserError."""
    c = _Checker(cfg)
    c.check(NAMES)
    if problem := name_error(cfg.task.name, cfg.arm.name, cfg.model.name):
        raise UserError(problem)
    # No value holds a secret from the environment (a label would send it in every prompt).
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 - a value that cannot resolve yet (Hydra's own, in tests)
        resolved = None
    if leak := resolved and leaked_secret(resolved, dict(os.environ)):
        raise UserError(leak)
    c.check(JOB)
    logs_model = cfg.mlflow.get("log_model") and cfg.arm.fit  # the fine-tuned one, as scored
    if logs_model and cfg.inference_dtype == "int8":
        c.fail("inference_dtype", "leaves weights that cannot be saved as a model (mlflow."
               "log_model=true logs the fine-tuned model as scored)",
               "score in float32, bfloat16 or float16, or set mlflow.log_model=false")
    if logs_model and "fsdp" in str(cfg.trainer.get("strategy")).lower():
        c.fail("mlflow.log_model", "needs the whole model in one process, and trainer=fsdp "
               "shards it", "fine-tune with trainer=ddp or one device to log the model, or set "
               "mlflow.log_model=false")
    if cfg.model.get("api"):
        c.check(API)
    _check_cost(cfg.cost, "cost")
    names = task_type(cfg.task.type).metric_names
    if not cfg.task.metrics:
        c.fail("task.metrics", "is not set", "list them, e.g. [accuracy, macro_f1] or [rouge] "
               "(or extend _intent / _summarization, which do)")
    if unknown := [m for m in cfg.task.metrics if m not in names]:
        c.fail("task.metrics", f"names {', '.join(map(str, unknown))}, not a "
               f"{cfg.task.type} metric", f"use {', '.join(names)}")
    c.check(TASK)
    _check_templates(cfg.task)
    arm = cfg.arm
    c.check(ARM)
    if arm.demos and arm.k == 0:
        c.fail("arm.k", f"leaves arm={arm.name} without demonstrations",
               "use arm.k >= 1, or arm=zero_shot for a prompt without them")
    if arm.fit:
        source = "model.finetune_lr" if arm.lora is None else "model.lora_lr"
        c.number("arm.lr", 0, low_open=True, fix=f"set arm.lr > 0 (or {source})")
        c.check(FIT if arm.lora is None else FIT | LORA)
    _check_identity(cfg.arm)
    task_type(cfg.task.type).check_config(c)
    c.integer("model.max_length", 1, null=True)
    tiny = cfg.model.tiny
    if tiny and cfg.model.max_length and cfg.model.max_length > tiny.n_positions:
        c.fail("model.max_length", f"is beyond the {tiny.n_positions} positions of model=tiny",
               "lower it, or set model.max_length=null")


def _check_cost(node: DictConfig, path: str) -> None:
    """No price under `cost` negative (negative dollars), no rate zero (infinite ones)."""
    for key, value in node.items():
        name = f"{path}.{key}"
        if isinstance(value, DictConfig):
            _check_cost(value, name)
        elif isinstance(value, Real) and not isinstance(value, bool) and (
                value < 0 or (value == 0 and "per_second" in key)):
            need = "> 0" if "per_second" in key else ">= 0"
            raise UserError(f"{name}={value} is not {need}; a price cannot be negative, "
                            f"nor a rate zero (set {name} to a value {need})")


def _check_templates(task: DictConfig) -> None:
    """The templates hold the placeholders they are filled through."""
    if task.template is None:  # fill_inherited fills it where task.prompt names a template
        raise UserError(f"task.prompt '{task.prompt}' is not one of task.templates "
                        f"({', '.join(task.templates or {}) or 'none'}); pick one or "
                        "set task.template")
    for key, text, slot, where in (("template", task.template, "{text}", "the input goes"), (
            "target_template", task.target_template, "{answer}", "the label or summary goes")):
        if slot not in text:
            raise UserError(f"task.{key} has no {slot} placeholder: {text!r}; add {slot} "
                            f"where {where}")


def _check_identity(arm: DictConfig) -> None:
    """No override makes an arm another (fit, demos, lora, teacher) still under its name."""
    try:
        own = compose_options([f"arm={arm.name}"]).arm
    except Exception:  # noqa: BLE001 - no file of that name: an arm of the user's own naming
        return
    hybrid = own.get("teacher") is not None  # its lora comes from its student's arm file
    keys = {"fit": (own.fit, arm.fit), "demos": (own.demos, arm.demos),  # a fitting arm's: free
            "lora": (own.lora is not None, arm.lora is not None),
            "teacher": (hybrid, arm.get("teacher") is not None)}
    for key, (theirs, given) in keys.items():
        if theirs != given and not (key == "demos" and own.fit) and not (key == "lora" and hybrid):
            value = "null" if key in ("lora", "teacher") and not given else str(given).lower()
            raise UserError(f"arm.{key}={value} makes arm={arm.name} another arm under its "
                            "name; pick the arm that is that (zero_shot, few_shot, "
                            "full_finetune, lora, hybrid), or give your variant its own arm.name")


def check_writable(output_dir: str, results_file: str | None) -> None:
    """The output folder and the results file's folder take files, before any work."""
    results = Path(results_file) if results_file else None
    if results and results.is_dir():
        raise UserError(f"results_file={results_file} is a folder; name a file in it, "
                        "e.g. results_file=<folder>/metrics.json")
    for what, folder in (("paths.output_dir (hydra.run.dir)", output_dir),
                         ("results_file", results and results.parent)):
        try:
            if folder is not None:
                Path(folder).mkdir(parents=True, exist_ok=True)
                tempfile.TemporaryFile(dir=folder).close()
        except OSError as err:
            raise UserError(f"cannot write to {folder} ({what}): {err.strerror}; point it at "
                            "a writable folder") from err
