"""What a job cost: wall time, tokens, money per phase, and for local models FLOPs and memory.

Every backend reports a `Usage`; `cost_metrics` turns it into the `cost/*` keys the same way
for all of them, so a key means one quantity whichever backend logged it (tracking/keys.py
says which).

FLOPs use the usual estimate with N = all parameters (tied weights once): a forward token
costs 2N; a trained token costs 4N + 2N_trainable (forward 2N, gradients of the activations
2N, gradients of the trainable weights 2N_trainable): 6N for full fine-tuning, about 4N for
LoRA, whose frozen weights get no weight gradients.
"""

import resource
import time
from dataclasses import dataclass, field

import lightning as L
import torch
import torch.distributed as dist


@dataclass
class Usage:
    """What producing a run's test predictions (and its training, if the arm trains) took."""

    n_predictions: int
    eval_seconds: float  # wall time to produce every test prediction
    eval_usd: float  # what the predictions cost, each charged its own tokens (see call_usd)
    input_tokens: int  # tokens read to produce them (prompts with demos, labels when ranked)
    charged_tokens: int  # tokens the predictions are charged for (every call its own prompt)
    eval_usd_measured: float | None = None  # wall time x price (None: the same as eval_usd)
    generated_tokens: int = 0
    eval_only_tokens: int = 0  # evaluation-only work (reference perplexity): no deployment pays
    train_seconds: float = 0.0
    train_usd: float = 0.0
    train_tokens: int = 0
    trainable_params: int = 0
    local: dict[str, float] = field(default_factory=dict)  # flops, memory, params, devices


def cost_metrics(usage: Usage) -> dict[str, float]:
    """The `cost/*` keys of a run, from its usage."""
    n = max(usage.n_predictions, 1)
    measured = usage.eval_usd if usage.eval_usd_measured is None else usage.eval_usd_measured
    return {
        "cost/train_seconds": usage.train_seconds,
        "cost/eval_seconds": usage.eval_seconds,
        "cost/train_tokens": usage.train_tokens,
        "cost/eval_tokens": usage.input_tokens,
        "cost/generated_tokens": usage.generated_tokens,
        "cost/eval_only_tokens": usage.eval_only_tokens,
        "cost/trainable_params": usage.trainable_params,
        "cost/usd": usage.train_usd + usage.eval_usd,
        "cost/train_usd": usage.train_usd,
        "cost/usd_per_1k_predictions": usage.eval_usd / n * 1000,
        "cost/usd_per_1k_predictions_measured": measured / n * 1000,
        "cost/tokens_per_prediction": usage.charged_tokens / n,
        "cost/latency_ms_per_example": usage.eval_seconds / n * 1000,
        **{f"cost/{name}": value for name, value in usage.local.items()},
    }


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # CPU: the process's peak resident set size (Linux reports KiB).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def call_usd(row: dict, total_params: int, cost_cfg, n_calls: int) -> tuple[float, float]:
    """(tokens charged, USD) of one local prediction, as a deployment would pay for it: its
    own prompt (the demos too, unless `cost.prefix_cache` spreads them over the run's calls),
    the labels it ranks or the tokens it writes, at 2 x parameters FLOPs per token and the
    FLOP/s the hardware sustains (conf/cost). The same work costs the same, whatever the
    arm, and no timing noise enters it."""
    prompt = row["call_tokens"]
    if cost_cfg.prefix_cache:
        prompt -= row["prefix_tokens"] * (1 - 1 / n_calls)
    generated = row.get("generated_tokens", 0)
    seconds = 2 * total_params * (prompt / cost_cfg.prompt_flops_per_second
                                  + generated / cost_cfg.generated_flops_per_second)
    return prompt + generated, seconds * cost_cfg.usd_per_hour / 3600


class CostMeter(L.Callback):
    """Times fit and test and counts the tokens each phase runs through the model."""

    def __init__(self):
        self.seconds = {"train": 0.0, "eval": 0.0}
        self.tokens = {"train": 0, "val": 0, "input": 0, "generated": 0, "eval_only": 0}
        self._started = 0.0

    def _start(self, trainer):
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        self._started = time.perf_counter()

    def _stop(self, trainer, phase):
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds[phase] += time.perf_counter() - self._started

    def on_fit_start(self, trainer, pl_module):
        self._start(trainer)

    def on_fit_end(self, trainer, pl_module):
        self._stop(trainer, "train")

    def on_test_start(self, trainer, pl_module):
        self._start(trainer)

    def on_test_end(self, trainer, pl_module):
        self._stop(trainer, "eval")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.tokens["train"] += int(batch["n_tokens"])

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                                dataloader_idx=0):
        self.tokens["val"] += int(batch["n_tokens"])

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        for kind in ("input", "generated", "eval_only"):
            self.tokens[kind] += int(outputs.get(f"{kind}_tokens", 0))

    def _reduce(self) -> int:
        """Under DDP: sum every rank's token counts (a collective: call on all ranks); returns
        the number of devices, each of which is paid for."""
        if not (dist.is_available() and dist.is_initialized()):
            return 1
        keys = sorted(self.tokens)
        counts = torch.tensor([self.tokens[k] for k in keys], dtype=torch.float64)
        if dist.get_backend() == "nccl":
            counts = counts.cuda()
        dist.all_reduce(counts)
        self.tokens = {k: int(v) for k, v in zip(keys, counts.tolist(), strict=True)}
        return dist.get_world_size()

    def usage(self, *, rows: list[dict], total_params: int, trainable_params: int,
              cost_cfg, device: torch.device, fitted: bool, model_memory_mb: float) -> Usage:
        """The run's usage from its prediction rows: each prediction charged its own tokens
        (`call_usd`), the wall time priced beside; training is the measured time x price of
        every device (a DDP job pays for each). Under DDP a collective: call on every rank."""
        devices = self._reduce()
        usd_per_second = cost_cfg.usd_per_hour * devices / 3600
        calls = [call_usd(row, total_params, cost_cfg, len(rows)) for row in rows]
        train_s, eval_s = self.seconds["train"], self.seconds["eval"]
        tokens = self.tokens
        train_flops = (4 * total_params + 2 * trainable_params) * tokens["train"]
        forward = tokens["val"] + tokens["input"] + tokens["generated"] + tokens["eval_only"]
        return Usage(
            n_predictions=len(rows), eval_seconds=eval_s, eval_usd=sum(c[1] for c in calls),
            eval_usd_measured=eval_s * usd_per_second,
            charged_tokens=round(sum(c[0] for c in calls)),
            input_tokens=tokens["input"], generated_tokens=tokens["generated"],
            eval_only_tokens=tokens["eval_only"], train_seconds=train_s,
            train_usd=train_s * usd_per_second, train_tokens=tokens["train"],
            trainable_params=trainable_params if fitted else 0,
            local={"flops": float(train_flops + 2 * total_params * forward),
                   "peak_memory_mb": _peak_memory_mb(device), "total_params": total_params,
                   "model_memory_mb": model_memory_mb, "devices": devices})
