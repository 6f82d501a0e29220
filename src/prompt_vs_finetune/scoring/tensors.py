"""Batch layout that scoring, generation and training share."""

import torch


def left_pad(seqs: list[list[int]], pad_id: int,
             width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(input ids, attention mask), every row ending at the last column, so the next-token
    logits of all rows sit at the same position."""
    width = width or max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        if seq:
            input_ids[row, width - len(seq):] = torch.tensor(seq)
            attention[row, width - len(seq):] = 1
    return input_ids, attention


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The [batch, 1, queries, keys] mask transformers takes for a boolean `allowed` [batch,
    queries, keys]: 0 or the dtype's minimum. A query that may attend to nothing (a padding
    row) sees itself, so no softmax runs over an empty row (NaN)."""
    queries, keys = allowed.shape[-2:]
    allowed = allowed.clone()
    allowed[..., :, keys - queries:] |= torch.eye(queries, dtype=torch.bool)
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return mask[:, None]
