"""The whole fit as a user waits for it, split, against the arithmetic and the HF Trainer.

    python bench/fit_split.py [--arms full_finetune lora] [--rounds 1] [--train-size 142]

pvf: a `pvf` job run in-process as the command runs it (`model=smollm2 task=banking77
train_size=142 model.max_epochs=1 model.min_steps=1 test_size=2`), `Trainer.fit` timed whole
(set-up, training loop, validation, best weights, resume-state saves), the test not counted,
nor the validation split's scoring for a search (not part of the fit; skipped here). The
Trainer: `Trainer(...)` and its whole `train()` on the same rows (the job's train and
validation splits, as PromptEncoder.training_example encodes them), set up as a user who
keeps the best checkpoint on validation sets it up: an evaluation and a checkpoint each epoch,
`load_best_model_at_end`, the same optimizer, schedule, batch size, clipping and LoRA. Each
side's training loop (the optimizer steps) is timed too: the loop-level figure. The arithmetic:
6 N FLOPs a trained token (N: every forward parameter, trainable or frozen) at the matrix-
multiply rate torch reaches here at SmolLM2's shapes (measured first). Sides run interleaved;
the load average (`uptime`) is printed with each round: this machine is shared.
"""

import argparse
import os
import tempfile
import time
from collections import defaultdict

import torch
from common import SHARED, config, real_model
from datasets import Dataset
from lightning.pytorch import Trainer as LightningTrainer
from lightning.pytorch.loops.evaluation_loop import _EvaluationLoop
from lightning.pytorch.loops.training_epoch_loop import _TrainingEpochLoop
from transformers import (
    AutoModelForCausalLM,
    DataCollatorForSeq2Seq,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from prompt_vs_finetune import job
from prompt_vs_finetune.backends import local
from prompt_vs_finetune.models.loading import apply_lora, context_length
from prompt_vs_finetune.tasks import job_splits, prompt_layout
from prompt_vs_finetune.train.module import BestWeights
from prompt_vs_finetune.train.resume import ResumeCheckpoint

DATA = SHARED / "banking77"


def load() -> float:
    return os.getloadavg()[0]


class Clock:
    """Wall seconds spent in wrapped methods, by label (nested calls of one label once)."""

    def __init__(self):
        self.seconds, self._depth = defaultdict(float), defaultdict(int)

    def wrap(self, owner, name: str, label):
        original = getattr(owner, name)
        clock = self

        def timed(obj, *args, **kwargs):
            what = label(obj) if callable(label) else label
            if not what or clock._depth[what]:
                return original(obj, *args, **kwargs)
            clock._depth[what] += 1
            start = time.perf_counter()
            try:
                return original(obj, *args, **kwargs)
            finally:
                clock._depth[what] -= 1
                clock.seconds[what] += time.perf_counter() - start

        setattr(owner, name, timed)
        return lambda: setattr(owner, name, original)


def job_overrides(arm: str, train_size: int, folder: str) -> list[str]:
    return ["task=banking77", "task.label_field=category",
            f"task.data_files={{train: {DATA / 'train.csv'}, test: {DATA / 'test.csv'}}}",
            "model=smollm2", f"arm={arm}", f"train_size={train_size}", "model.max_epochs=1",
            "model.min_steps=1", "test_size=2", f"paths.output_dir={folder}/out",
            f"paths.resume_dir={folder}/resume", f"mlflow.tracking_uri=sqlite:///{folder}/db",
            "mlflow.system_metrics=false", "cache_predictions=false"]


def pvf_fit(arm: str, train_size: int) -> dict[str, float]:
    """Seconds by part: the loop is the epochs' batches (a periodic save at a batch's end
    included: none in 8 steps); validation (the best's copy made inside it) and saves are
    outside it."""
    clock, undo = Clock(), []
    fitting = lambda loop: "validation" if loop.trainer.state.fn == "fit" else None  # noqa: E731
    for owner, name, label in [
            (LightningTrainer, "fit", "whole fit"), (_TrainingEpochLoop, "advance", "loop"),
            (_EvaluationLoop, "run", fitting), (ResumeCheckpoint, "save", "saves"),
            (BestWeights, "on_validation_end", "best copied"),
            (BestWeights, "on_fit_end", "best put back")]:
        undo.append(clock.wrap(owner, name, label))
    chooses = local.chooses_on_validation  # the fit alone: no validation scored to choose on
    local.chooses_on_validation = lambda fit, train_size: False
    try:
        with tempfile.TemporaryDirectory() as folder:
            results = job.run(config(*job_overrides(arm, train_size, folder)))
    finally:
        local.chooses_on_validation = chooses
        for step in undo:
            step()
    seconds = dict(clock.seconds)
    seconds["cost/train_seconds"] = results["cost/train_seconds"]
    return seconds


class StepClock(TrainerCallback):
    def __init__(self):
        self.seconds, self._start = 0.0, 0.0

    def on_step_begin(self, *_, **__):
        self._start = time.perf_counter()

    def on_step_end(self, *_, **__):
        self.seconds += time.perf_counter() - self._start


def hf_fit(path: str, cfg, train_rows, val_rows, tokenizer) -> dict[str, float]:
    clock, steps = Clock(), StepClock()
    undo = [clock.wrap(Trainer, "evaluate", "validation"),
            clock.wrap(Trainer, "_save_checkpoint", "saves"),
            clock.wrap(Trainer, "_load_best_model", "saves")]
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(path)
    if cfg.arm.lora:
        model = apply_lora(model, cfg.arm.lora)
    try:
        with tempfile.TemporaryDirectory() as out:
            args = TrainingArguments(
                output_dir=out, per_device_train_batch_size=cfg.arm.batch_size,
                per_device_eval_batch_size=cfg.arm.batch_size, num_train_epochs=1,
                learning_rate=cfg.arm.lr, weight_decay=cfg.arm.weight_decay,
                warmup_steps=cfg.arm.warmup_ratio, lr_scheduler_type="linear",
                max_grad_norm=1.0, report_to=[], eval_strategy="epoch", save_strategy="epoch",
                save_total_limit=1, load_best_model_at_end=True, metric_for_best_model="loss",
                logging_strategy="no", use_cpu=True, dataloader_num_workers=0,
                train_sampling_strategy="group_by_length", disable_tqdm=True, seed=0)
            trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(train_rows),
                              eval_dataset=Dataset.from_list(val_rows),
                              data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True),
                              callbacks=[steps])
            trainer.train()
            whole = time.perf_counter() - start
    finally:
        for step in undo:
            step()
    return {**clock.seconds, "whole fit": whole, "loop": steps.seconds}


def matmul_rate(tokens: int = 400, repeats: int = 20) -> float:
    """FLOP/s of torch's matrix products at SmolLM2's training shapes (a 16-row batch of
    ~25 tokens; width 576, key/value 192, MLP 1,536, the 49,152-row output at answers):
    forward, and the two backward products of each."""
    shapes = [(576, 576)] * 2 + [(576, 192)] * 2 + [(576, 1536)] * 2 + [(1536, 576)]
    total, elapsed = 0, 0.0
    for k, n in shapes:
        x, w, g = torch.randn(tokens, k), torch.randn(k, n), torch.randn(tokens, n)
        x @ w  # first-call costs
        start = time.perf_counter()
        for _ in range(repeats):
            x @ w
            g @ w.T
            x.T @ g
        elapsed += time.perf_counter() - start
        total += 3 * 2 * tokens * k * n * repeats
    return total / elapsed


def row(name: str, s: dict[str, float], tokens: int, arithmetic: float) -> list[str]:
    whole, loop = s["whole fit"], s["loop"]
    copied, put_back = s.get("best copied", 0.0), s.get("best put back", 0.0)
    validation, saves = s.get("validation", 0.0) - copied, s.get("saves", 0.0)
    setup = whole - loop - validation - saves - copied - put_back
    return [name, f"{whole:.1f}", f"{loop:.1f}", f"{validation:.1f}", f"{saves:.1f}",
            f"{copied + put_back:.2f}", f"{setup:.1f}",
            f"{tokens / whole:.1f}", f"{tokens / loop:.1f}", f"{whole / arithmetic:.2f}x",
            f"{loop / arithmetic:.2f}x"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", default=["full_finetune", "lora"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--train-size", type=int, default=142)
    args = parser.parse_args()
    model, tokenizer, path = real_model("smollm2")
    n_params = sum(p.numel() for p in model.parameters())
    rate = matmul_rate()
    print(f"# matrix-multiply rate at SmolLM2's shapes: {rate:.3g} FLOP/s "
          f"({torch.get_num_threads()} threads; load {load():.2f}); N = {n_params:,}")
    header = ["side", "whole fit s", "loop s", "validation s", "saves s", "best in memory s",
              "set-up and rest s", "whole tokens/s", "loop tokens/s", "whole / arithmetic",
              "loop / arithmetic"]
    for arm in args.arms:
        cfg = config(*job_overrides(arm, args.train_size, "/tmp"))
        task, splits, _, _ = job_splits(cfg.task, None, cfg.train_size, cfg.test_size,
                                        cfg.data_seed)
        encoder, _ = prompt_layout(task, tokenizer, context_length(model, cfg.model.max_length),
                                   None, [], splits["test"]["text"])
        train = [encoder.training_example(r) for r in splits["train"]]
        val = [encoder.training_example(r) for r in splits["validation"]]
        tokens = sum(len(r["input_ids"]) for r in train)
        arithmetic = 6 * n_params * tokens / rate
        print(f"\n## {arm}: {len(train)} train / {len(val)} validation rows, {tokens} trained "
              f"tokens; arithmetic {arithmetic:.1f} s (6 N tokens / rate)")
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for r in range(args.rounds):
            for name in ("pvf", "Trainer"):
                before = load()
                seconds = (pvf_fit(arm, args.train_size) if name == "pvf"
                           else hf_fit(path, cfg, train, val, tokenizer))
                print("| " + " | ".join(row(f"{name} (round {r + 1}, load {before:.1f}-"
                                            f"{load():.1f})", seconds, tokens, arithmetic))
                      + " |" + (f" cost/train_seconds {seconds['cost/train_seconds']:.1f}"
                                if "cost/train_seconds" in seconds else ""), flush=True)


if __name__ == "__main__":
    main()
