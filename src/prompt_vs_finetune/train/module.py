"""One LightningModule for every local arm (they differ only in whether `fit` runs first):
training minimises the loss on the answer tokens; testing hands each batch to the scorer."""

import contextlib
import logging
import math
import random

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import LearningRateMonitor
from transformers import get_linear_schedule_with_warmup

from ..errors import UserError
from ..models.precision import to_inference_dtype, weight_memory_mb
from ..tasks.prompts import IGNORE_INDEX

log = logging.getLogger(__name__)


def model_inputs(batch: dict) -> dict:
    """The batch without its bookkeeping (`n_tokens`, counted by the CostMeter)."""
    return {k: v for k, v in batch.items() if k != "n_tokens"}


def decoder_of(model) -> torch.nn.Module:
    """The causal LM without its output projection (a peft model's adapters are inside)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder()


def answer_loss(decoder, head, batch: dict) -> torch.Tensor:
    """Mean cross-entropy over the answer tokens (as transformers' causal-LM loss), with logits
    only where they predict one: GPT-2's output projection is a third of a forward pass, and
    an answer 3-10 of a Banking77 example's ~25 tokens."""
    inputs = model_inputs(batch)
    target = inputs.pop("labels")[:, 1:]  # position t predicts token t + 1
    where = target != IGNORE_INDEX
    hidden = decoder(**inputs).last_hidden_state[:, :-1][where]
    return torch.nn.functional.cross_entropy(head(hidden).float(), target[where])


class ArmModule(L.LightningModule):
    def __init__(self, model, scorer, lr: float, weight_decay: float, warmup_ratio: float,
                 compile: bool, inference_dtype: str):
        super().__init__()
        self.model = model.train()  # from_pretrained returns eval mode: dropout would be off
        # torch.compile for the training forward only (batches vary in length); a bound
        # method, so the model is not registered (and checkpointed) a second time
        decoder = decoder_of(model)
        self.train_decoder = (torch.compile(decoder, dynamic=True) if compile
                              else decoder).__call__
        self.head = model.get_output_embeddings().__call__  # tied to the input embeddings
        self.scorer, self.inference_dtype = scorer, inference_dtype
        self.lr, self.weight_decay, self.warmup_ratio = lr, weight_decay, warmup_ratio
        # LoRA: checkpoints hold only the trainable weights; the frozen base comes from the hub
        self.trainable_only = any(not p.requires_grad for p in model.parameters())
        self.strict_loading = not self.trainable_only
        self.predictions: list[dict] = []
        self.weight_memory_mb: float | None = None  # of the model as scored (cost metric)

    @classmethod
    def from_config(cls, model, scorer, arm, compile: bool, inference_dtype: str) -> "ArmModule":
        return cls(model, scorer, lr=arm.lr, weight_decay=arm.weight_decay,
                   warmup_ratio=arm.warmup_ratio, compile=compile,
                   inference_dtype=inference_dtype)

    def training_step(self, batch, batch_idx):
        loss = answer_loss(self.train_decoder, self.head, batch)
        if not torch.isfinite(loss):  # stop now: every later step would be wasted
            raise UserError(f"the training loss became {loss.item()} at step {self.global_step} "
                            f"(epoch {self.current_epoch}); lower arm.lr (now {self.lr:g}) or "
                            "check the data")
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True,
                 batch_size=batch["input_ids"].size(0))
        return loss

    def validation_step(self, batch, batch_idx):
        loss = answer_loss(self.train_decoder, self.head, batch)
        self.log("val/loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=batch["input_ids"].size(0), sync_dist=True)

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [  # no weight decay on biases and layer norms
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": self.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
        # fused: one launch for all tensors (7.7x faster steps for 124M parameters on 2 CPU
        # cores, measured); the HF Trainer's default too
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
        """Cast to `inference_dtype` once, after Lightning loaded the best checkpoint."""
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
        if self.trainer.world_size > 1:  # DDP: every rank scored a share; metrics need all
            shards = [None] * self.trainer.world_size
            dist.all_gather_object(shards, self.predictions)
            unique = {row["index"]: row for shard in shards for row in shard}  # sampler pads
            self.predictions = [unique[i] for i in sorted(unique)]


class LearningRateCurve(LearningRateMonitor):
    """`train/lr` at every logged training step: one curve, not Lightning's one per parameter
    group (the groups differ in weight decay only)."""

    KEY = "train/lr"

    def __init__(self):
        super().__init__(logging_interval="step")

    def _extract_stats(self, trainer, interval: str) -> dict[str, float]:
        stats = super()._extract_stats(trainer, interval)
        first = next((stats[name] for name in self.lrs if name in stats), None)
        return {} if first is None else {self.KEY: first}
