"""The Lightning callback that measures a local job's usage (wall time, tokens, FLOPs, peak
memory); `metrics/cost.py` prices it."""

import resource
import time

import lightning as L
import torch
import torch.distributed as dist

from ..metrics.cost import Usage, call_usd, fit_usd


def _peak_memory_mb(device: torch.device) -> float:
    """CUDA's peak allocation, or on CPU the process's peak resident set (Linux: KiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CostMeter(L.Callback):
    """Times fit and test and counts the tokens each phase runs through the model."""

    def __init__(self):
        self.seconds = {"train": 0.0, "eval": 0.0}
        self.tokens = {"train": 0, "val": 0, "input": 0, "generated": 0, "eval_only": 0}
        self._started = 0.0

    def _clock(self, trainer) -> float:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_fit_start(self, trainer, pl_module):
        self._started = self._clock(trainer)

    def on_fit_end(self, trainer, pl_module):
        self.seconds["train"] += self._clock(trainer) - self._started

    def on_test_start(self, trainer, pl_module):
        self._started = self._clock(trainer)

    def on_test_end(self, trainer, pl_module):
        self.seconds["eval"] += self._clock(trainer) - self._started

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.tokens["train"] += int(batch["n_tokens"])

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                                dataloader_idx=0):
        self.tokens["val"] += int(batch["n_tokens"])

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        for kind in ("input", "generated", "eval_only"):
            self.tokens[kind] += int(outputs.get(f"{kind}_tokens", 0))

    def _reduce(self) -> int:
        """Under DDP, every rank's token counts summed (a collective); the devices paid for."""
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
        """Each prediction charged its own tokens, the fit its FLOPs, and the wall time of
        each priced beside, for every device. Under DDP a collective: call on every rank."""
        devices = self._reduce()
        usd_per_second = cost_cfg.usd_per_hour * devices / 3600
        calls = [call_usd(row, total_params, cost_cfg, len(rows)) for row in rows]
        train_s, eval_s, tokens = self.seconds["train"], self.seconds["eval"], self.tokens
        train_flops = (4 * total_params + 2 * trainable_params) * tokens["train"]
        forward = sum(tokens[k] for k in ("val", "input", "generated", "eval_only"))
        return Usage(
            n_predictions=len(rows), eval_seconds=eval_s, eval_usd=sum(c[1] for c in calls),
            eval_usd_measured=eval_s * usd_per_second,
            charged_tokens=round(sum(c[0] for c in calls)),
            input_tokens=tokens["input"], generated_tokens=tokens["generated"],
            eval_only_tokens=tokens["eval_only"], train_seconds=train_s,
            train_usd=fit_usd(train_flops, tokens["val"], total_params, cost_cfg),
            train_usd_measured=train_s * usd_per_second, train_tokens=tokens["train"],
            trainable_params=trainable_params if fitted else 0,
            local={"flops": float(train_flops + 2 * total_params * forward),
                   "peak_memory_mb": _peak_memory_mb(device), "total_params": total_params,
                   "model_memory_mb": model_memory_mb, "devices": devices})
