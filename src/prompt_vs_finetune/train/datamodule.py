"""Lightning data module: tokenized training pairs, and test examples for the scorer."""

import lightning as L
import torch
import torch.distributed as dist
from datasets import DatasetDict
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from ..tasks import IGNORE_INDEX, PromptEncoder


def pad_collate(pad_id: int):
    """Right-pad a batch to its longest row."""

    def pad(seqs: list[list[int]], value: int) -> torch.Tensor:
        return pad_sequence([torch.tensor(seq, dtype=torch.long) for seq in seqs],
                            batch_first=True, padding_value=value)

    def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
        ids = [row["input_ids"] for row in rows]
        attention = pad([[1] * len(seq) for seq in ids], 0)
        return {"input_ids": pad(ids, pad_id), "attention_mask": attention,
                "labels": pad([row["labels"] for row in rows], IGNORE_INDEX),
                "n_tokens": int(attention.sum())}  # real tokens, for the cost meter

    return collate


class LengthGroupedBatches(Sampler[list[int]]):
    """Training batches of similar lengths in a new random order every epoch: shuffle, sort windows
    of `window` batches, batch, shuffle the batches; DDP: every world-th, as many on every rank."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, window: int = 50):
        self.lengths, self.batch_size, self.seed, self.window = lengths, batch_size, seed, window
        self.epoch, self.skip = 0, 0  # skip: batches of this epoch trained on (set by a resume)

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this before every epoch
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=gen).tolist()
        span = self.batch_size * self.window
        batches = []
        for start in range(0, len(order), span):
            window = sorted(order[start:start + span], key=self.lengths.__getitem__)
            batches += [window[i:i + self.batch_size]
                        for i in range(0, len(window), self.batch_size)]
        shuffled = torch.randperm(len(batches), generator=gen).tolist()
        rank, world = _shard()
        usable = len(batches) - len(batches) % world
        return [batches[i] for i in shuffled[:usable]][rank::world]

    def __iter__(self):
        skip, self.skip = self.skip, 0
        yield from self._batches()[skip:]

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size) // _shard()[1]


def budget_batches(lengths: list[int], max_rows: int, max_tokens: int | None) -> list[list[int]]:
    """Consecutive batches of at most `max_rows` rows and `max_tokens` padded tokens (rows x
    longest row), for rows sorted by length: a long input gets a small batch of its own."""
    batches, current, width = [], [], 0
    for i, n in enumerate(lengths):
        wider = max(width, n)
        if current and (len(current) >= max_rows
                        or (max_tokens and (len(current) + 1) * wider > max_tokens)):
            batches.append(current)
            current, wider = [], n
        current.append(i)
        width = wider
    return batches + [current] if current else batches


def _shard() -> tuple[int, int]:
    """(this process's rank, the number of processes) under DDP, else (0, 1)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class TaskDataModule(L.LightningDataModule):
    """Serves train/validation as prompt -> answer sequences and test as the scorer's rows."""

    def __init__(self, splits: DatasetDict, encoder: PromptEncoder, scorer, batch_size: int,
                 group_by_length: bool, seed: int):
        super().__init__()
        self.splits, self.encoder, self.scorer = splits, encoder, scorer
        self.batch_size, self.group_by_length, self.seed = batch_size, group_by_length, seed
        self._encoded: dict[tuple[str, bool], list[dict]] = {}
        self.scored = "test"  # the split `test_dataloader` serves (validation, to choose on)

    def _rows(self, split: str, scored: bool = False) -> list[dict]:
        """A split as training sequences, or (`scored`) as the scorer's rows."""
        if (split, scored) not in self._encoded:
            self._encoded[split, scored] = (
                self.scorer.test_rows(self.splits[split]) if scored
                else [self.encoder.training_example(row) for row in self.splits[split]])
        return self._encoded[split, scored]

    def _loader(self, split: str) -> DataLoader:
        """Padded training sequences (train shuffled), each loader with its own generator: one
        drawing on the global RNG (dropout's) would make a resumed job drift."""
        rows, shuffle = self._rows(split), split == "train"
        collate = pad_collate(self.encoder.tokenizer.pad_token_id)
        generator = torch.Generator().manual_seed(self.seed)
        if shuffle and self.group_by_length:
            batches = LengthGroupedBatches([len(r["input_ids"]) for r in rows], self.batch_size,
                                           self.seed)
            return DataLoader(rows, batch_sampler=batches, collate_fn=collate, generator=generator)
        # sharded here: trainer=ddp turns off Lightning's sampler injection (see the sampler)
        sampler = DistributedSampler(rows, shuffle=shuffle, seed=self.seed) \
            if _shard()[1] > 1 else None
        return DataLoader(rows, batch_size=self.batch_size, shuffle=shuffle and sampler is None,
                          sampler=sampler, collate_fn=collate, generator=generator)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation")

    def test_dataloader(self) -> DataLoader:
        """The `scored` split in token-budgeted batches (DDP: every world-th; the module joins)."""
        rows = self._rows(self.scored, scored=True)
        rank, world = _shard()
        batches = budget_batches([self.scorer.row_tokens(r) for r in rows],
                                 self.scorer.examples_per_batch, self.scorer.max_batch_tokens)
        return DataLoader(rows, batch_sampler=batches[rank::world],
                          collate_fn=lambda rows: {key: [r[key] for r in rows] for key in rows[0]},
                          generator=torch.Generator().manual_seed(self.seed))
