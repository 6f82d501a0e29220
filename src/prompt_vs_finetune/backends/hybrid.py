"""The hybrid arm: a prompted teacher (any backend, behind the caches) labels the pool unseen; a
local student is fine-tuned on its most confident labels (docs/arms.md)."""

import copy
import logging
import math

from datasets import Dataset, DatasetDict, concatenate_datasets
from omegaconf import DictConfig, OmegaConf, open_dict

from ..config import check_config, fill_inherited, seed_or
from ..errors import UserError
from ..project import compose_options
from ..tasks import Task, select_demos
from . import Backend, Predictions, backend_for, build
from .local import LocalBackend

log = logging.getLogger(__name__)
_MISSING = object()


class HybridBackend(Backend):
    kind = "local"

    @staticmethod
    def check(cfg: DictConfig) -> None:
        """The student's settings as a local fine-tune's, and the arm's own: one line each."""
        LocalBackend.check(cfg)
        arm = cfg.arm
        if not (isinstance(arm.keep, (int, float)) and 0 < arm.keep <= 1):
            raise UserError(f"arm.keep={arm.keep!r} is outside (0, 1]; the share of the "
                            "teacher's labels the student trains on, e.g. 0.5")
        for name in arm.teacher.prompts or ():
            if name not in (cfg.task.templates or {}):
                raise UserError(f"arm.teacher.prompts names '{name}', not one of "
                                f"task.templates ({', '.join(cfg.task.templates or {})})")

    def prepare(self, task, splits, corpus, demos):
        """The teacher labels the pool: the student's splits, and the teacher's demos."""
        teachers = [teacher_config(self.cfg, prompt)  # every check first
                    for prompt in self.cfg.arm.teacher.prompts or [None]]
        splits, shown, self.teaching, self.teacher_cached = label_pool(
            teachers, self.cfg.arm.keep, self.cfg.seed, task, splits, corpus)
        self.human_labels = len(shown)  # the teacher's demonstrations
        return splits, shown

    def load(self, task, splits, corpus, demos, data_sha) -> None:
        self.student = LocalBackend(self.cfg)
        self.student.load(task, splits, corpus, demos, data_sha)
        self.resume_run_id = self.student.resume_run_id

    def predict(self, run) -> Predictions:
        """The student's predictions, with what the teacher did and cost (up-front)."""
        predictions = self.student.predict(run)
        predictions.metrics.update(self.teaching)
        predictions.tags["teacher_cached"] = str(self.teacher_cached).lower()
        predictions.n_labels = self.human_labels
        predictions.upfront_usd = self.teaching["cost/teacher_usd"]
        return predictions

    def close(self, outcome: str) -> None:
        if hasattr(self, "student"):  # (a load that failed has none)
            self.student.close(outcome)


def teacher_config(cfg: DictConfig, prompt: str | None = None) -> DictConfig:
    """The job's config as `arm.teacher` runs it, with `prompt` (a task.templates name)."""
    wanted = cfg.arm.teacher
    overrides = [f"arm={wanted.arm}"] + ([f"model={wanted.model}"] if wanted.model else [])
    composed = compose_options(overrides)
    teacher = copy.deepcopy(cfg)
    with open_dict(teacher):
        teacher.arm = composed.arm
        if teacher.arm.demos:
            teacher.arm.k = wanted.k
        if wanted.model:
            teacher.model = composed.model
            teacher.cost.token_prices = OmegaConf.merge(teacher.cost.get("token_prices") or {},
                                                        composed.cost.get("token_prices") or {})
        if prompt:
            teacher.task.prompt, teacher.task.template = prompt, None
        for override in wanted.overrides or ():
            key, value = _parse(override)
            if OmegaConf.select(teacher, key, default=_MISSING) is _MISSING:
                raise UserError(f"arm.teacher.overrides sets {key}, which the teacher's config "
                                "does not have; check the key (e.g. model.api.base_url)")
            OmegaConf.update(teacher, key, value)
    teacher.train_size = None  # it labels texts and chooses nothing: no validation to score
    fill_inherited(teacher)
    if teacher.arm.fit:
        raise UserError(f"arm.teacher.arm={wanted.arm} trains; the teacher is a prompting arm "
                        "(zero_shot or few_shot)")
    backend_for(teacher).check(teacher)
    check_config(teacher)
    return teacher


def _parse(override: str) -> tuple[str, object]:
    """`key=value` in Hydra's override grammar (a value as YAML reads it)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        parsed = OverridesParser.create().parse_override(override)
    except OverrideParseException as err:
        raise UserError(f"arm.teacher.overrides has {override!r}, which is not key=value "
                        f"({str(err).splitlines()[0]}); write it as on the command line") from err
    return parsed.key_or_group, parsed.value()


def label_pool(teachers: list[DictConfig], keep_share: float, seed: int, task: Task,
               splits: DatasetDict, corpus: list[str]) -> tuple:
    """(the student's splits: the kept teacher labels of train and validation plus the
    teacher's demos with their own labels; the teacher's demos; its metrics; all cached?)."""
    arm = teachers[0].arm
    demos = select_demos(splits["train"], arm.k, arm.selection, seed, seed_or(arm.order_seed, seed))
    shown = {d["text"] for d in demos}
    pool = {role: splits[role].filter(lambda row: row["text"] not in shown)
            for role in ("train", "validation")}
    texts = list(pool["train"]["text"]) + list(pool["validation"]["text"])
    runs = [label(teacher, task, splits, corpus, demos, texts) for teacher in teachers]
    outputs, confidence = task.kind.vote(runs)
    keep = kept(confidence, keep_share)
    n_train = len(pool["train"])
    train = with_outputs(pool["train"], outputs[:n_train], keep[:n_train], task)
    if demos:
        shown_rows = Dataset.from_list(demos).select_columns(splits["train"].column_names)
        train = concatenate_datasets([train, shown_rows])
    validation = with_outputs(pool["validation"], outputs[n_train:], keep[n_train:], task)
    if not len(validation) or not len(train):
        usable = sum(c > 0 for c in confidence)
        raise UserError(f"arm.keep={keep_share} leaves the student {len(train)} train and "
                        f"{len(validation)} validation examples ({usable} of the teacher's "
                        f"{len(texts)} outputs are usable: a label named, a summary ended before "
                        "max_new_tokens); raise arm.keep or train_size, or use a stronger teacher")
    teaching = {"hybrid/kept": sum(keep), "hybrid/pool": len(texts),
                "cost/teacher_usd": sum(r["usage"].eval_usd for r in runs),
                "cost/teacher_usd_cached": sum(r["usage"].eval_usd_cached for r in runs),
                "cost/teacher_tokens": sum(r["usage"].charged_tokens for r in runs),
                "cost/teacher_seconds": sum(r["usage"].eval_seconds for r in runs)}
    accuracy = ""
    if task.labels:
        gold = list(pool["train"]["label"]) + list(pool["validation"]["label"])
        right = [o == g for o, g in zip(outputs, gold, strict=True)]
        kept_right = [r for r, k in zip(right, keep, strict=True) if k]
        teaching["hybrid/pseudo_label_accuracy"] = sum(right) / len(right)
        teaching["hybrid/kept_accuracy"] = sum(kept_right) / max(1, len(kept_right))
        accuracy = f"; pseudo-label accuracy {teaching['hybrid/pseudo_label_accuracy']:.3f}"
    log.info("hybrid: the teacher labelled %d texts, %d kept%s", len(texts), sum(keep), accuracy)
    student = DatasetDict({"train": train, "validation": validation, "test": splits["test"]})
    return student, demos, teaching, all(r["cached"] for r in runs)


def label(teacher: DictConfig, task: Task, splits: DatasetDict, corpus: list[str],
          demos: list[dict], texts: list[str]) -> dict:
    """The teacher's outputs, confidences, usage, cached or not (gold labels never reach it)."""
    teacher_task = Task.from_config(teacher.task, task.label_names or None)
    inputs = DatasetDict({"train": splits["train"], "validation": splits["validation"],
                          "test": Dataset.from_list([task.kind.hidden(task, t) for t in texts])})
    backend = build(teacher)
    backend.load(teacher_task, inputs, corpus, demos, data_sha="")
    try:
        predictions = backend.predict(None)
    finally:
        backend.close("finished")
    replies = predictions.metrics.get("api/cache_hits")  # a hosted teacher's cached replies
    cached = predictions.tags.get("predictions_cached") == "true" or replies == len(texts)
    rows = sorted(predictions.rows, key=lambda r: r["index"])
    outputs, confidence = task.kind.taught(task, rows)
    return {"outputs": outputs, "confidence": confidence, "usage": predictions.usage,
            "cached": cached}


def kept(confidence: list[float], keep: float) -> list[bool]:
    """The most confident `keep` share (ties at the cut kept together), never confidence 0."""
    if not confidence:
        return []
    ranked = sorted(confidence, reverse=True)
    cut = ranked[min(len(ranked), math.ceil(keep * len(ranked))) - 1]
    return [c >= cut and c > 0 for c in confidence]


def with_outputs(split: Dataset, outputs: list, keep: list[bool], task: Task) -> Dataset:
    """The split's kept rows, their label (or reference) replaced by the teacher's."""
    column = task.kind.answer_column
    rows = [row | {column: task.kind.as_answer(out)}
            for row, out, k in zip(split, outputs, keep, strict=True) if k]
    return Dataset.from_list(rows, features=split.features) if rows else split.select([])
