"""The one LightningModule of every local arm (`fit` runs first or not) and its callbacks: the
best weights, and the cost meter (usage that metrics/cost.py prices)."""

import contextlib
import logging
import math
import random
import resource
import time

import lightning as L
import numpy as np
import torch
import torch.distributed as dist

from ..errors import UserError
from ..metrics.cost import Usage, call_usd, fit_usd
from ..models.precision import to_inference_dtype, weight_memory_mb
from ..tasks.prompts import IGNORE_INDEX

log = logging.getLogger(__name__)


def decoder_of(model) -> torch.nn.Module:
    """The causal LM without its output projection (a peft model's adapters are inside)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder()


def answer_loss(decoder, head, batch: dict) -> torch.Tensor:
    """Mean cross-entropy over the answer tokens, with logits only where they predict one (GPT-2's
    output projection is a third of a forward pass; an answer, 3-10 of ~25 tokens)."""
    inputs = {k: v for k, v in batch.items() if k != "n_tokens"}  # n_tokens: the CostMeter's
    target = inputs.pop("labels")[:, 1:]  # position t predicts token t + 1
    where = target != IGNORE_INDEX
    hidden = decoder(**inputs).last_hidden_state[:, :-1][where]
    return torch.nn.functional.cross_entropy(head(hidden).float(), target[where])


class ArmModule(L.LightningModule):
    def __init__(self, model, scorer, lr: float, weight_decay: float, warmup_ratio: float,
                 compile: bool, inference_dtype: str):
        super().__init__()
        self.model = model.train()  # from_pretrained returns eval mode: dropout would be off
        # compiled for training only (lengths vary); a bound method: not checkpointed twice
        decoder = decoder_of(model)
        self.train_decoder = (torch.compile(decoder, dynamic=True) if compile else decoder).__call__
        self.head = model.get_output_embeddings().__call__  # tied to the input embeddings
        self.scorer, self.inference_dtype = scorer, inference_dtype
        self.lr, self.weight_decay, self.warmup_ratio = lr, weight_decay, warmup_ratio
        # LoRA: checkpoints hold only the trainable weights; the frozen base comes from the hub
        self.trainable_only = any(not p.requires_grad for p in model.parameters())
        self.strict_loading = not self.trainable_only
        self.predictions: list[dict] = []
        self.weight_memory_mb: float | None = None  # of the model as scored (cost metric)

    def training_step(self, batch, batch_idx):
        loss = answer_loss(self.train_decoder, self.head, batch)
        if not torch.isfinite(loss):  # stop now: every later step would be wasted
            raise UserError(f"the training loss became {loss.item()} at step {self.global_step} "
                            f"(epoch {self.current_epoch}); lower arm.lr (now {self.lr:g}) or "
                            "check the data")
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True,
                 batch_size=batch["input_ids"].size(0))
        # the step's rate (one curve: the parameter groups differ in weight decay only)
        self.log("train/lr", self.lr_schedulers().get_last_lr()[0], on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch, batch_idx):
        loss = answer_loss(self.train_decoder, self.head, batch)
        self.log("val/loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=batch["input_ids"].size(0), sync_dist=True)

    def configure_optimizers(self):
        from transformers import get_linear_schedule_with_warmup  # imports peft: fits only

        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [  # no weight decay on biases and layer norms
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": self.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
        # fused: one launch for all tensors (steps 7.7x faster for 124M parameters on 2 CPUs)
        fused = all(p.device.type in ("cpu", "cuda") for p in params) or None
        optimizer = torch.optim.AdamW(groups, lr=self.lr, fused=fused)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = get_linear_schedule_with_warmup(optimizer, int(total * self.warmup_ratio),
                                                    total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler,
                                                         "interval": "step"}}

    def on_train_start(self):
        """Resumed mid-epoch (Lightning restores the loop, not the data order): skip the
        batches already trained on of the order rebuilt from (seed, epoch)."""
        sampler = getattr(self.trainer.train_dataloader, "batch_sampler", None)
        if not hasattr(sampler, "skip"):
            return
        accumulate = self.trainer.accumulate_grad_batches
        steps_per_epoch = math.ceil(len(sampler) / accumulate)
        done = (self.trainer.global_step - self.current_epoch * steps_per_epoch) * accumulate
        if 0 < done < len(sampler):
            sampler.skip = done
            log.info("resumed mid-epoch %d: skipping its %d trained batches", self.current_epoch,
                     done)

    def on_load_checkpoint(self, checkpoint):
        if rng := checkpoint.get("pvf_rng"):  # dropout etc. continue exactly where they were
            torch.set_rng_state(rng["torch"])
            random.setstate(rng["python"])
            np.random.set_state(("MT19937", rng["numpy_keys"].numpy().astype(np.uint32),
                                 *rng["numpy_rest"]))
            if rng.get("cuda") and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])

    def on_save_checkpoint(self, checkpoint):
        """RNG states as tensors and plain numbers: checkpoints load with weights_only=True."""
        _, keys, *rest = np.random.get_state()
        checkpoint["pvf_rng"] = {
            "torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy_keys": torch.from_numpy(keys.astype(np.int64)), "numpy_rest": list(rest),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
        if self.trainable_only:
            keep = {name for name, p in self.named_parameters() if p.requires_grad}
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items()
                                        if k in keep}

    def on_test_start(self):
        """Cast to `inference_dtype` once, after the fit put its best weights back."""
        if self.inference_dtype != "float32" and self.weight_memory_mb is None:
            self.model = to_inference_dtype(self.model, self.inference_dtype, self.device)
        self.weight_memory_mb = weight_memory_mb(self.model)

    def on_test_epoch_start(self):
        self.predictions = []
        self.scorer.start()

    def test_step(self, batch, batch_idx):
        # a cast model runs in its own dtype, not under a *-mixed trainer.precision's autocast
        with (contextlib.nullcontext() if self.inference_dtype == "float32"
              else torch.autocast(self.device.type, enabled=False)):
            rows, counts = self.scorer.step(self.model, batch)
        self.predictions.extend(rows)
        return counts

    def on_test_epoch_end(self):
        """Every rank ends with all predictions, in test-split order."""
        self.predictions.sort(key=lambda row: row["index"])
        if self.trainer.world_size > 1:  # DDP: every rank scored a share
            shards = [None] * self.trainer.world_size
            dist.all_gather_object(shards, self.predictions)
            unique = {row["index"]: row for shard in shards for row in shard}  # sampler pads
            self.predictions = [unique[i] for i in sorted(unique)]


class BestWeights(L.Callback):
    """The trainable weights at the lowest val/loss so far, in CPU memory, put back at the end."""

    score: float | None = None
    weights: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer, pl_module):
        loss = trainer.callback_metrics.get("val/loss")
        if not trainer.sanity_checking and loss is not None \
                and (self.score is None or loss < self.score):
            self.score = float(loss)
            self.weights = {name: p.detach().to("cpu", copy=True)
                            for name, p in pl_module.named_parameters() if p.requires_grad}

    def on_fit_end(self, trainer, pl_module):
        if self.weights is not None:
            pl_module.load_state_dict(self.weights, strict=False)

    def state_dict(self) -> dict:
        return {"score": self.score, "weights": self.weights}

    def load_state_dict(self, state_dict) -> None:
        self.score, self.weights = state_dict["score"], state_dict["weights"]


class CostMeter(L.Callback):
    """Times fit and test and counts the tokens each phase runs through the model."""

    def __init__(self):
        self.seconds, self._started = {"train": 0.0, "eval": 0.0}, 0.0
        self.tokens = {"train": 0, "val": 0, "input": 0, "generated": 0, "eval_only": 0}
        self.counting = True  # off while validation is scored to choose on: not a call's cost

    def _clock(self, trainer) -> float:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_fit_start(self, trainer, pl_module):
        self._started = self._clock(trainer)

    on_test_start = on_fit_start

    def on_fit_end(self, trainer, pl_module):
        self.seconds["train"] += self._clock(trainer) - self._started

    def on_test_end(self, trainer, pl_module):
        if self.counting:
            self.seconds["eval"] += self._clock(trainer) - self._started

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.tokens["train"] += int(batch["n_tokens"])

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                                dataloader_idx=0):
        self.tokens["val"] += int(batch["n_tokens"])

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        for kind in ("input", "generated", "eval_only") if self.counting else ():
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
        cached = [call_usd(row, total_params, cost_cfg, len(rows), cached=True) for row in rows]
        train_s, eval_s, tokens = self.seconds["train"], self.seconds["eval"], self.tokens
        train_flops = (4 * total_params + 2 * trainable_params) * tokens["train"]
        forward = sum(tokens[k] for k in ("val", "input", "generated", "eval_only"))
        peak_mb = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
                   else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # Linux: KiB
        return Usage(
            n_predictions=len(rows), eval_seconds=eval_s, eval_usd=sum(c[1] for c in calls),
            eval_usd_cached=sum(c[1] for c in cached), eval_usd_measured=eval_s * usd_per_second,
            charged_tokens=round(sum(c[0] for c in calls)),
            input_tokens=tokens["input"], generated_tokens=tokens["generated"],
            eval_only_tokens=tokens["eval_only"], train_seconds=train_s,
            train_usd=fit_usd(train_flops, tokens["val"], total_params, cost_cfg),
            train_usd_measured=train_s * usd_per_second, train_tokens=tokens["train"],
            trainable_params=trainable_params if fitted else 0,
            local={"flops": float(train_flops + 2 * total_params * forward),
                   "peak_memory_mb": peak_mb, "total_params": total_params,
                   "model_memory_mb": model_memory_mb, "devices": devices})
