"""Fine-tuning throughput: the `full_finetune` and `lora` arms vs a Hugging Face Trainer.

    python bench/finetune.py [--data ../shared/data/banking77] [--n 256] [--arch gpt2]

Both sides train the same checkpoint (loaded from the same directory: GPT-2's shape with random
weights, or `--arch smollm2`, the pretrained SmolLM2-135M-Instruct) on the
same prompt -> answer examples (PromptEncoder.training_example, loss on the answer), with
the same batch size, optimizer (AdamW), learning rate, epochs and precision, in one process.
Throughput is real (non-padding) tokens per second of the training loop. The Trainer runs as
users run it (DataCollatorForSeq2Seq, dynamic padding, random batches) and with its
`train_sampling_strategy="group_by_length"` option. pvf loads and trains the model as a job
does (`load_model`) and computes logits at answer positions only. Each configuration runs
`--rounds` times, interleaved, and the fastest round counts (the spread is printed).
"""

import argparse
import tempfile
import time

import lightning as L
import torch
from common import (
    REAL,
    banking77,
    config,
    machine,
    random_model,
    real_model,
    table,
    tokenizer_corpus,
    weights,
)
from datasets import Dataset
from omegaconf import OmegaConf
from transformers import (
    AutoModelForCausalLM,
    DataCollatorForSeq2Seq,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from prompt_vs_finetune.models.loading import apply_lora, load_model
from prompt_vs_finetune.tasks import prompt_layout
from prompt_vs_finetune.train.datamodule import TaskDataModule
from prompt_vs_finetune.train.module import ArmModule

LORA = {"r": 8, "alpha": 16, "dropout": 0.05}
TARGETS = {"gpt2": ["c_attn", "c_proj", "c_fc"],  # every linear layer, as conf/model/*.yaml
           "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}
LR = {"full_finetune": 5e-5, "lora": 2e-4}


class LoopTimer(L.Callback, TrainerCallback):
    """Wall time of the training loop alone, for Lightning and for the HF Trainer."""

    def _start(self, *_, **__):
        self.start = time.perf_counter()

    def _end(self, *_, **__):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.start

    on_train_start = on_train_begin = _start
    on_train_end = _end


def load(path: str, arm: str, ours: bool):
    """The model as a pvf job loads it (`ours`), or as a Trainer user does."""
    if ours:
        model, _ = load_model(config("model=gpt2", f"model.name_or_path={path}").model, "")
    else:
        model = AutoModelForCausalLM.from_pretrained(path)
    if arm == "lora":
        targets = TARGETS[model.config.model_type]
        model = apply_lora(model, OmegaConf.create({**LORA, "target_modules": targets}))
    return model


def bench_lightning(path, arm, splits, encoder, args, precision):
    model = load(path, arm, ours=True)
    data = TaskDataModule(splits, encoder, scorer=None, batch_size=args.batch_size,
                          group_by_length=True, seed=0)
    module = ArmModule(model, scorer=None, lr=LR[arm], weight_decay=0.0, warmup_ratio=0.0,
                       compile=False, inference_dtype="float32")
    timer = LoopTimer()
    trainer = L.Trainer(max_epochs=args.epochs, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, precision=precision,
                        callbacks=[timer],
                        gradient_clip_val=1.0,
                        accelerator="auto", devices=1)
    trainer.fit(module, train_dataloaders=data.train_dataloader())
    return timer.seconds


def bench_hf(path, arm, rows, tokenizer, args, bf16, group_by_length) -> float:
    model = load(path, arm, ours=False)
    timer = LoopTimer()
    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(
            output_dir=out, per_device_train_batch_size=args.batch_size,
            num_train_epochs=args.epochs, learning_rate=LR[arm], weight_decay=0.0,
            lr_scheduler_type="constant", max_grad_norm=1.0, report_to=[],
            save_strategy="no", logging_strategy="no", eval_strategy="no", bf16=bf16,
            use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0,
            train_sampling_strategy="group_by_length" if group_by_length else "random",
            disable_tqdm=True, seed=0)
        trainer = Trainer(model=model, args=targs, train_dataset=Dataset.from_list(rows),
                          data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True),
                          callbacks=[timer])
        trainer.train()
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder with Banking77 train.csv/test.csv")
    parser.add_argument("--n", type=int, default=256, help="training examples")
    parser.add_argument("--arch", default="gpt2")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--arms", nargs="+", default=["full_finetune", "lora"])
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's peak dense TFLOP/s at the precision used (H100 SXM "
                             "bf16: 989), to print model FLOP utilisation")
    args = parser.parse_args()

    cfg, task, splits = banking77(args.data)
    model, tokenizer, path = (real_model(args.arch) if args.arch in REAL
                              else random_model(args.arch, tokenizer_corpus(task, splits)))
    vocabulary = len(tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    del model
    splits["train"] = splits["train"].shuffle(seed=0).select(range(args.n))
    encoder, _ = prompt_layout(task, tokenizer, 1024, None, [], splits["test"]["text"])
    rows = [encoder.training_example(r) for r in splits["train"]]
    tokens = sum(len(r["input_ids"]) for r in rows) * args.epochs
    gpu = torch.cuda.is_available()
    bf16 = gpu and torch.cuda.is_bf16_supported()
    precision = "bf16-mixed" if bf16 else "32-true"
    small = {**splits, "train": splits["train"].select(range(32))}  # warm-up: first-call costs
    bench_lightning(path, "full_finetune", small, encoder, args, precision)
    sides = {
        "pvf": lambda arm: bench_lightning(path, arm, splits, encoder, args, precision),
        "Trainer": lambda arm: bench_hf(path, arm, rows, tokenizer, args, bf16, False),
        "Trainer group_by_length": lambda arm: bench_hf(path, arm, rows, tokenizer, args, bf16,
                                                        True),
    }
    out = []
    for arm in args.arms:
        seconds = {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, run in sides.items():
                seconds[name].append(run(arm))
        speed = {name: tokens / min(times) for name, times in seconds.items()}
        best_hf = max(speed["Trainer"], speed["Trainer group_by_length"])
        spread = max(max(t) / min(t) - 1 for t in seconds.values())
        out.append([arm, speed["pvf"], speed["Trainer"], speed["Trainer group_by_length"],
                    f"{speed['pvf'] / best_hf:.2f}x", f"{spread:.0%}"])
    print(f"# finetune: Banking77, {args.n} examples x {args.epochs} epoch(s), batch "
          f"{args.batch_size}, {args.arch} ({weights(args.arch)}, vocabulary {vocabulary:,}), "
          f"{precision}, {machine()}; {tokens} real tokens; "
          f"best of {args.rounds} interleaved rounds")
    print(table(["arm", "pvf tokens/s", "Trainer tokens/s", "Trainer group_by_length tokens/s",
                 "pvf / best Trainer", "largest round-to-round spread"], out))
    # model FLOPs as nanoGPT counts them: 6 x parameters per real token (forward and
    # backward, the output projection at every position included), whatever a side skips
    for row in (r for r in out if r[0] == "full_finetune"):  # LoRA skips weight gradients
        tflops = 6 * n_params * row[1] / 1e12
        mfu = f", MFU {tflops / args.peak_tflops:.1%}" if args.peak_tflops else ""
        print(f"# {row[0]}: pvf at {tflops:.3g} model TFLOP/s ({n_params / 1e6:.0f}M "
              f"parameters x 6 per token){mfu}")


if __name__ == "__main__":
    main()
