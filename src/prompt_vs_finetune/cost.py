"""What a job cost: wall time, tokens, FLOPs, peak memory and money, per phase.

FLOPs use the usual estimate with N = all parameters (tied weights once): a forward token
costs 2N; a trained token costs 4N + 2N_trainable (forward 2N, gradients of the activations
2N, gradients of the trainable weights 2N_trainable): 6N for full fine-tuning, about 4N for
LoRA, whose frozen weights get no weight gradients.
"""

import resource
import time

import lightning as L
import torch
import torch.distributed as dist


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # CPU: the process's peak resident set size (Linux reports KiB).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CostMeter(L.Callback):
    """Times fit and test and counts the tokens each phase runs through the model."""

    def __init__(self):
        self.seconds = {"train": 0.0, "eval": 0.0}
        self.tokens = {"train": 0, "val": 0, "eval": 0, "generated": 0}
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
        self.tokens["eval"] += int(outputs["tokens"])
        self.tokens["generated"] += int(outputs.get("generated_tokens", 0))

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

    def summary(self, *, n_predictions: int, total_params: int, trainable_params: int,
                usd_per_hour: float, device: torch.device, fitted: bool) -> dict[str, float]:
        """The cost metrics; `usd_per_hour` is the price of one device (GPU or CPU host)."""
        devices = self._reduce()
        usd_per_hour = usd_per_hour * devices
        train_s, eval_s = self.seconds["train"], self.seconds["eval"]
        train_flops = (4 * total_params + 2 * trainable_params) * self.tokens["train"]
        forward_flops = 2 * total_params * (self.tokens["val"] + self.tokens["eval"])
        per_example_s = eval_s / max(n_predictions, 1)
        return {
            "cost/train_seconds": train_s,
            "cost/eval_seconds": eval_s,
            "cost/train_tokens": self.tokens["train"],
            "cost/eval_tokens": self.tokens["eval"],
            "cost/generated_tokens": self.tokens["generated"],
            "cost/flops": float(train_flops + forward_flops),
            "cost/peak_memory_mb": _peak_memory_mb(device),
            "cost/trainable_params": trainable_params if fitted else 0,
            "cost/total_params": total_params,
            "cost/usd": (train_s + eval_s) / 3600 * usd_per_hour,
            "cost/train_usd": train_s / 3600 * usd_per_hour,
            "cost/usd_per_1k_predictions": per_example_s * 1000 / 3600 * usd_per_hour,
            "cost/latency_ms_per_example": per_example_s * 1000,
            "cost/devices": devices,
        }
