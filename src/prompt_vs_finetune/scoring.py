"""Log-likelihood of continuations (verbalized labels, reference answers) after a context.

Sequences are left-padded with position ids taken from the attention mask, so every
continuation ends at the last position and only the last few positions need logits: a
vocabulary-sized softmax over the whole prompt is never materialised.
"""

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import UserError


@dataclass
class Scores:
    logprob: torch.Tensor  # [n] sum of the continuation's token log-probabilities
    n_tokens: torch.Tensor  # [n] continuation lengths in tokens
    tokens_processed: int  # non-pad tokens run through the model (for cost accounting)


def _forward_kwargs(model) -> set[str]:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(inspect.signature(base.forward).parameters)


@torch.no_grad()
def continuation_logprobs(model, contexts: list[list[int]], continuations: list[list[int]],
                          pad_id: int, batch_size: int = 64) -> Scores:
    """Sum of log p(continuation | context) for each (context, continuation) pair."""
    if len(contexts) != len(continuations):
        raise ValueError("contexts and continuations differ in length")
    device = next(model.parameters()).device
    accepts = _forward_kwargs(model)
    n = len(contexts)
    logprob = torch.zeros(n, dtype=torch.float64)
    n_tokens = torch.tensor([len(c) for c in continuations])
    lengths = [len(a) + len(b) for a, b in zip(contexts, continuations, strict=True)]
    order = sorted(range(n), key=lengths.__getitem__, reverse=True)  # little padding per batch
    for start in range(0, n, batch_size):
        rows = order[start:start + batch_size]
        width = max(lengths[i] for i in rows)
        window = max(len(continuations[i]) for i in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        target_mask = torch.zeros((len(rows), window), dtype=torch.bool)
        for r, i in enumerate(rows):
            seq = contexts[i] + continuations[i]
            input_ids[r, width - len(seq):] = torch.tensor(seq)
            attention[r, width - len(seq):] = 1
            target_mask[r, window - len(continuations[i]):] = True
        position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
        kwargs = {"input_ids": input_ids.to(device), "attention_mask": attention.to(device),
                  "position_ids": position_ids.to(device)}
        if "logits_to_keep" in accepts:
            kwargs["logits_to_keep"] = window + 1
        logits = model(**kwargs).logits[:, -(window + 1):-1].float()
        targets = input_ids[:, -window:].to(device)
        token_lp = F.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        sums = (token_lp * target_mask.to(device)).sum(-1).double().cpu()
        logprob[torch.tensor(rows)] = sums
    return Scores(logprob=logprob, n_tokens=n_tokens, tokens_processed=sum(lengths))


def normalise(logprob: torch.Tensor, n_tokens: torch.Tensor, n_chars: torch.Tensor,
              length_norm: str) -> torch.Tensor:
    """Rank score of each choice: summed log-prob, or per token / per character."""
    if length_norm == "none":
        return logprob
    if length_norm == "token":
        return logprob / n_tokens
    if length_norm == "char":
        return logprob / n_chars
    raise UserError(f"unknown scorer.length_norm '{length_norm}'; use none, token or char")
