"""Fill the values one config group takes from another (a null in the YAML, so that every
conf/ file is plain YAML that `dvc exp run -S` can edit): the model's learning rates and LoRA
targets for a fitting arm, the hybrid student's settings from its own arm file, the template
task.prompt names, the decoding budget. Runs before `checks.check_config`."""

import copy
import logging

from omegaconf import DictConfig, open_dict

from .errors import UserError
from .project import compose_options

log = logging.getLogger(__name__)
STUDENTS = {"full": "full_finetune", "lora": "lora"}  # hybrid: arm.student -> its arm file
STUDENT_KEYS = ("weight_decay", "warmup_ratio", "lora")  # null in hybrid.yaml: the student's


def settle(cfg: DictConfig) -> None:
    """Fill the values one config group takes from another (a null in the YAML, so that every
    conf/ file is plain YAML that `dvc exp run -S` can edit), and keep an arm itself.

    The seed-linked ones (arm.order_seed, decoding.seed) stay null, read as the seed where
    used, so runs that differ only in their seed stay one cell.
    """
    arm, model = cfg.arm, cfg.model
    if arm.get("teacher") is not None:  # hybrid: the student trains as its own arm would
        fill_student(cfg)
    if arm.lr is None and arm.fit:
        arm.lr = model.finetune_lr if arm.lora is None else model.lora_lr
    if arm.lora is not None:
        if arm.lora.r is None:
            arm.lora.r = model.lora_r
        if arm.lora.target_modules is None:
            arm.lora.target_modules = model.lora_target_modules
    if arm.max_epochs is None:
        arm.max_epochs = model.max_epochs
    if arm.get("min_steps", 0) is None:
        arm.min_steps = model.min_steps
    if cfg.trainer.get("max_epochs", 0) is None:
        cfg.trainer.max_epochs = arm.max_epochs
    if cfg.decoding.max_new_tokens is None:
        cfg.decoding.max_new_tokens = cfg.task.max_new_tokens
    if cfg.task.template is None and cfg.task.prompt in (cfg.task.templates or {}):
        cfg.task.template = cfg.task.templates[cfg.task.prompt]
    # An arm that shows no demonstrations (`arm.demos: false`: zero-shot, the fine-tuned arms
    # by default) uses none whatever arm.k a sweep passes to every arm, and logs arm.k=0.
    if not arm.demos and arm.k != 0:
        log.info("arm=%s shows no demonstrations: arm.k=%s ignored (arm.demos=true uses them)",
                 arm.name, arm.k)
        arm.k = 0


def fill_student(cfg: DictConfig) -> None:
    """The student's training settings that the hybrid arm leaves null, from the student's own
    arm file, so a hybrid student trains exactly as that arm does (idempotent)."""
    arm = cfg.arm
    if arm.student not in STUDENTS:
        raise UserError(f"arm.student={arm.student!r} is not one of {', '.join(STUDENTS)}; "
                        "pick full or lora")
    if all(arm[key] is not None for key in STUDENT_KEYS if key != "lora") and (
            arm.lora is not None or arm.student == "full"):
        return
    student = compose_options([f"arm={STUDENTS[arm.student]}"]).arm
    with open_dict(arm):
        for key in STUDENT_KEYS:
            if arm[key] is None:
                arm[key] = copy.deepcopy(student[key])


def seed_or(value, cfg: DictConfig) -> int:
    """A seed-linked value (arm.order_seed, decoding.seed): its own, or null = the job's seed."""
    return int(cfg.seed if value is None else value)


def one_device(trainer_cfg) -> bool:
    """Whether the trainer runs on one device (`devices` 1, auto or unset): several need a
    trainer that shards the data (trainer=ddp) and share no prediction cache."""
    return str(trainer_cfg.get("devices", 1)) in ("1", "auto", "None")
