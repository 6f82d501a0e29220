"""One LightningModule for all four arms: they differ only in whether `fit` runs first.

Training minimises the loss on the answer tokens of prompt -> answer sequences; testing ranks
the verbalized labels by their log-likelihood after the prompt, for every arm alike.
"""

import lightning as L
import torch
from transformers import get_linear_schedule_with_warmup

from .metrics import classification_metrics, perplexity
from .prompts import PromptEncoder
from .scoring import continuation_logprobs, normalise


class ArmModule(L.LightningModule):
    def __init__(self, model, encoder: PromptEncoder, length_norm: str = "none",
                 score_batch_size: int = 64, lr: float = 0.0, weight_decay: float = 0.0,
                 warmup_ratio: float = 0.0):
        super().__init__()
        self.model = model.train()  # from_pretrained returns eval mode: dropout off
        self.encoder = encoder
        self.length_norm = length_norm
        self.score_batch_size = score_batch_size
        self.lr, self.weight_decay, self.warmup_ratio = lr, weight_decay, warmup_ratio
        task = encoder.task
        self.choice_chars = torch.tensor([len(task.target(n)) for n in task.label_names])
        # LoRA: checkpoints hold only the trainable weights; the frozen base comes from the hub.
        self.trainable_only = any(not p.requires_grad for p in model.parameters())
        self.strict_loading = not self.trainable_only
        self.predictions: list[dict] = []

    # -- fitting ------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        loss = self.model(**batch).loss
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True,
                 batch_size=batch["input_ids"].size(0))
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self.model(**batch).loss
        self.log("val/loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=batch["input_ids"].size(0))

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [  # no weight decay on biases and layer norms
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": self.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=self.lr)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = get_linear_schedule_with_warmup(optimizer, int(total * self.warmup_ratio),
                                                    total)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint):
        if self.trainable_only:
            keep = {name for name, p in self.named_parameters() if p.requires_grad}
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items()
                                        if k in keep}

    # -- scoring ------------------------------------------------------------------------
    def on_test_epoch_start(self):
        self.predictions = []

    def test_step(self, batch, batch_idx):
        contexts = batch["context_ids"]
        choices = self.encoder.choice_ids
        n_choices = len(choices)
        scores = continuation_logprobs(
            self.model, [c for c in contexts for _ in choices], choices * len(contexts),
            pad_id=self.encoder.tokenizer.pad_token_id, batch_size=self.score_batch_size)
        logprob = scores.logprob.view(len(contexts), n_choices)
        n_tokens = scores.n_tokens.view(len(contexts), n_choices)
        ranked = normalise(logprob, n_tokens, self.choice_chars, self.length_norm)
        predicted = ranked.argmax(-1)
        for row, (index, gold) in enumerate(zip(batch["index"], batch["label"], strict=True)):
            pred = int(predicted[row])
            self.predictions.append({
                "index": index, "label": gold, "predicted": pred,
                "score": float(ranked[row, pred]),
                "gold_logprob": float(logprob[row, gold]), "gold_tokens": int(n_tokens[row, gold]),
            })
        return {"tokens": scores.tokens_processed}

    def on_test_epoch_end(self):
        preds = [p["predicted"] for p in self.predictions]
        golds = [p["label"] for p in self.predictions]
        metrics = classification_metrics(self.encoder.task.metrics, preds, golds)
        metrics["perplexity"] = perplexity([p["gold_logprob"] for p in self.predictions],
                                           [p["gold_tokens"] for p in self.predictions])
        for name, value in metrics.items():
            self.log(f"test/{name}", value)
