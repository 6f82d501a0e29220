"""The hybrid arm: prototype with a prompt, then fine-tune on what it produces.

A teacher (any prompting configuration the project runs: the job's own model or another,
local or hosted, zero- or few-shot) labels the texts of the job's train and validation
splits without seeing their labels; its most confident labels are kept (`arm.keep`), and a
student (`arm.student`: trained as `arm=full_finetune` or `arm=lora` would be) is fine-tuned
on them. The only human labels the arm uses are the teacher's demonstrations, which the
student trains on too; the gold labels of the rest are used for one thing, to measure the
teacher (`hybrid/pseudo_label_accuracy`).

Confidence: with several teacher prompts (`arm.teacher.prompts`), the share of prompts that
agree with the majority label; else a local teacher's margin (top label's probability less
the runner-up's) and 1 for every reply a hosted teacher gave that names a label. A summary
counts when it is not empty and was not cut by max_new_tokens. The teacher's outputs are
cached by content hash under `paths.cache_dir/teacher`, so a sweep over students pays once.
"""

import copy
import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from datasets import Dataset, DatasetDict, concatenate_datasets
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf, open_dict

from .checks import check_config
from .errors import UserError
from .project import compose_options
from .settle import settle
from .tasks import Task, content_hash, select_demos
from .usage import Usage

log = logging.getLogger(__name__)
_MISSING = object()


def is_hybrid(cfg: DictConfig) -> bool:
    return cfg.arm.get("teacher") is not None


def teacher_config(cfg: DictConfig, prompt: str | None = None) -> DictConfig:
    """The job's config as the teacher runs it: its model (`arm.teacher.model`, null: the
    job's), a prompting arm (`arm.teacher.arm`, with `arm.teacher.k` demonstrations) and
    `prompt` (a task.templates name)."""
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
            prices = composed.cost.get("token_prices") or {}
            teacher.cost.token_prices = OmegaConf.merge(teacher.cost.get("token_prices") or {},
                                                        prices)
        if prompt:
            teacher.task.prompt, teacher.task.template = prompt, None
        for override in wanted.overrides or ():
            key, value = _parse(override)
            if OmegaConf.select(teacher, key, default=_MISSING) is _MISSING:
                raise UserError(f"arm.teacher.overrides sets {key}, which the teacher's config "
                                "does not have; check the key (e.g. model.api.base_url)")
            OmegaConf.update(teacher, key, value)
    settle(teacher)
    if teacher.arm.fit:
        raise UserError(f"arm.teacher.arm={wanted.arm} trains; the teacher is a prompting arm "
                        "(zero_shot or few_shot)")
    get_class(teacher.model.backend).check(teacher)
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


@dataclass
class Teaching:
    """What the teacher did: the numbers the job logs."""

    pseudo_label_accuracy: float | None  # classification: of every labelled text
    kept_accuracy: float | None
    kept: int
    pool: int
    human_labels: int  # the teacher's demonstrations
    usd: float
    tokens: int
    seconds: float
    cached: bool

    def metrics(self) -> dict[str, float]:
        values = {"hybrid/kept": self.kept, "hybrid/pool": self.pool,
                  "cost/teacher_usd": self.usd, "cost/teacher_tokens": self.tokens,
                  "cost/teacher_seconds": self.seconds}
        if self.pseudo_label_accuracy is not None:
            values["hybrid/pseudo_label_accuracy"] = self.pseudo_label_accuracy
            values["hybrid/kept_accuracy"] = self.kept_accuracy
        return values


def teach(cfg: DictConfig, task: Task, splits: DatasetDict,
          corpus: list[str]) -> tuple[DatasetDict, list[dict], Teaching]:
    """(the splits the student trains on: the kept teacher labels of train and validation,
    plus the teacher's demos with their own labels; the teacher's demos; what it took)."""
    prompts = list(cfg.arm.teacher.prompts or [None])
    teachers = [teacher_config(cfg, prompt) for prompt in prompts]  # every check first
    first = teachers[0]
    demos = select_demos(splits["train"], first.arm.k, first.arm.selection, cfg.seed,
                         first.arm.order_seed if first.arm.order_seed is not None
                         else cfg.seed)
    shown = {d["text"] for d in demos}
    pool = {role: splits[role].filter(lambda row: row["text"] not in shown)
            for role in ("train", "validation")}
    texts = list(pool["train"]["text"]) + list(pool["validation"]["text"])
    runs = [label(teacher, task, splits, corpus, demos, texts) for teacher in teachers]
    outputs, confidence = task.kind.vote(runs)
    keep = kept(confidence, cfg.arm.keep)
    n_train = len(pool["train"])
    student = DatasetDict({
        "train": concatenate_datasets([with_outputs(pool["train"], outputs[:n_train],
                                                    keep[:n_train], task),
                                       Dataset.from_list(demos).select_columns(
                                           splits["train"].column_names)])
        if demos else with_outputs(pool["train"], outputs[:n_train], keep[:n_train], task),
        "validation": with_outputs(pool["validation"], outputs[n_train:], keep[n_train:], task),
        "test": splits["test"]})
    if not len(student["validation"]) or not len(student["train"]):
        usable = sum(c > 0 for c in confidence)
        raise UserError(f"arm.keep={cfg.arm.keep} leaves the student "
                        f"{len(student['train'])} train and {len(student['validation'])} "
                        f"validation examples ({usable} of the teacher's {len(texts)} outputs "
                        "are usable: a label named, a summary ended before max_new_tokens); "
                        "raise arm.keep or train_size, or use a stronger teacher")
    gold = list(pool["train"]["label"]) + list(pool["validation"]["label"]) \
        if task.labels else None
    teaching = Teaching(
        pseudo_label_accuracy=_accuracy(outputs, gold, [True] * len(outputs)),
        kept_accuracy=_accuracy(outputs, gold, keep),
        kept=sum(keep), pool=len(texts), human_labels=len(demos),
        usd=sum(r["usd"] for r in runs), tokens=sum(r["tokens"] for r in runs),
        seconds=sum(r["seconds"] for r in runs), cached=all(r["cached"] for r in runs))
    log.info("hybrid: the teacher labelled %d texts, %d kept%s", teaching.pool, teaching.kept,
             "" if gold is None else
             f"; pseudo-label accuracy {teaching.pseudo_label_accuracy:.3f}")
    return student, demos, teaching


def _accuracy(outputs, gold, keep) -> float | None:
    if gold is None:
        return None
    pairs = [(o, g) for o, g, k in zip(outputs, gold, keep, strict=True) if k]
    return sum(o == g for o, g in pairs) / len(pairs) if pairs else 0.0


def label(teacher: DictConfig, task: Task, splits: DatasetDict, corpus: list[str],
          demos: list[dict], texts: list[str]) -> dict:
    """The teacher's output for every text ({outputs, confidence, usd, tokens, seconds,
    cached}), from the cache when this teacher labelled these texts before. The texts go to
    it with a placeholder label: gold labels never reach a teacher."""
    teacher_task = Task.from_config(teacher.task, task.label_names or None)
    key = cache_key(teacher, teacher_task, demos, texts)
    path = Path(teacher.paths.cache_dir) / "teacher" / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text()) | {"cached": True}
    hidden = [task.kind.hidden(task, t) for t in texts]
    inputs = DatasetDict({"train": splits["train"], "validation": splits["validation"],
                          "test": Dataset.from_list(hidden)})
    backend = get_class(teacher.model.backend)(teacher, teacher_task, inputs, corpus, demos,
                                               data_sha="")
    try:
        predictions = backend.predict(None)
    finally:
        backend.close("finished")
    result = {**outputs_of(task, predictions.rows, predictions.usage),
              "cached": False}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)
    return result


def outputs_of(task: Task, rows: list[dict], usage: Usage) -> dict:
    """The teacher's label (or summary) and confidence per text, in text order."""
    outputs, confidence = task.kind.taught(task, sorted(rows, key=lambda r: r["index"]))
    return {"outputs": outputs, "confidence": confidence, "usd": usage.eval_usd,
            "tokens": usage.charged_tokens, "seconds": usage.eval_seconds}


def kept(confidence: list[float], keep: float) -> list[bool]:
    """The most confident `keep` share of the texts (ties at the cut are kept together);
    never one without a usable output (confidence 0)."""
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
    if not rows:
        return split.select([])
    return Dataset.from_list(rows, features=split.features)


def cache_key(teacher: DictConfig, task: Task, demos: list[dict], texts: list[str]) -> str:
    """What determines the teacher's outputs: its model, arm, prompt, scorer or decoding,
    dtype, the demos and the texts (not the student, the seed's other uses or the store)."""
    settings = {name: OmegaConf.to_container(teacher[name], resolve=True)
                for name in ("model", "arm", "scorer", "decoding", "prompt")}
    identity = {"settings": settings, "dtype": teacher.inference_dtype, "task": asdict(task),
                "demos": content_hash(demos), "texts": content_hash([{"t": t} for t in texts])}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()
                          ).hexdigest()[:24]
