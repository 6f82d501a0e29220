"""Lightning data module: tokenized training pairs, and test examples for the scorer."""

import lightning as L
import torch
from datasets import DatasetDict
from torch.utils.data import DataLoader

from .prompts import IGNORE_INDEX, PromptEncoder


def pad_collate(pad_id: int):
    """Right-pad a batch to its own longest sequence (dynamic padding)."""

    def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(row["input_ids"]) for row in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            n = len(row["input_ids"])
            input_ids[r, :n] = torch.tensor(row["input_ids"])
            labels[r, :n] = torch.tensor(row["labels"])
            attention[r, :n] = 1
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}

    return collate


def _keep_lists(rows: list[dict]) -> dict[str, list]:
    return {key: [row[key] for row in rows] for key in rows[0]}


class TaskDataModule(L.LightningDataModule):
    """Serves train/validation as prompt -> answer sequences and test as the scorer's rows."""

    def __init__(self, splits: DatasetDict, encoder: PromptEncoder, scorer, batch_size: int = 16):
        super().__init__()
        self.splits = splits
        self.encoder = encoder
        self.scorer = scorer
        self.batch_size = batch_size
        self._encoded: dict[str, list[dict]] = {}

    def _rows(self, split: str) -> list[dict]:
        if split not in self._encoded:
            if split == "test":
                self._encoded[split] = self.scorer.test_rows(self.splits["test"])
            else:
                self._encoded[split] = [self.encoder.training_example(row)
                                        for row in self.splits[split]]
        return self._encoded[split]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self._rows("train"), batch_size=self.batch_size, shuffle=True,
                          collate_fn=pad_collate(self.encoder.tokenizer.pad_token_id))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self._rows("validation"), batch_size=self.batch_size,
                          collate_fn=pad_collate(self.encoder.tokenizer.pad_token_id))

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self._rows("test"), batch_size=self.scorer.examples_per_batch,
                          collate_fn=_keep_lists)
