"""Log-likelihood of continuations (label words, reference answers) after a context, every
continuation left-padded to end at the last position: logits are computed only there."""

import copy
import functools
import inspect
import os
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from ..errors import UserError


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input ids, attention mask), every row ending at the last column."""
    input_ids = pad_sequence([torch.tensor(s, dtype=torch.long) for s in seqs], batch_first=True,
                             padding_value=pad_id, padding_side="left")
    width, lengths = input_ids.size(1), torch.tensor([len(s) for s in seqs])
    return input_ids, (torch.arange(width) >= width - lengths[:, None]).long()


class Scores(NamedTuple):
    logprob: torch.Tensor  # [n] sum of the continuation's token log-probabilities
    n_tokens: torch.Tensor  # [n] continuation lengths in tokens
    tokens_processed: int  # non-pad tokens run through the model (for cost accounting)


@functools.cache  # scoring asks on every batch
def _forward_params(model_class) -> frozenset[str]:
    return frozenset(inspect.signature(model_class.forward).parameters)


def _accepts(model, argument: str) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return argument in _forward_params(type(base))


def takes_cache(model) -> bool:
    """Whether the model's forward takes a KV cache, and with it 4D masks (GPT-1 does not)."""
    return _accepts(model, "cache")


def _logits_kept(model, keep) -> dict:
    """`logits_to_keep` where the model takes it (GPT-2's projection is a third of a pass)."""
    return {"logits_to_keep": keep} if _accepts(model, "logits_to_keep") else {}


def prefill(model, input_ids: torch.Tensor):
    """The key/value cache of `input_ids` (one position's logits: a prefix's are never read)."""
    return model(input_ids=input_ids, use_cache=True, **_logits_kept(model, 1)).cache


@torch.no_grad()
def continuation_logprobs(model, contexts: list[list[int]], continuations: list[list[int]],
                          pad_id: int, batch_size: int = 64) -> Scores:
    """Sum of log p(continuation | context) for each (context, continuation) pair."""
    device, n = next(model.parameters()).device, len(contexts)
    logprob = torch.zeros(n, dtype=torch.float64)
    n_tokens = torch.tensor([len(c) for c in continuations])
    lengths = [len(a) + len(b) for a, b in zip(contexts, continuations, strict=True)]
    order = sorted(range(n), key=lengths.__getitem__, reverse=True)  # little padding per batch
    for start in range(0, n, batch_size):
        rows = order[start:start + batch_size]
        window = max(len(continuations[i]) for i in rows)
        input_ids, attention = left_pad([contexts[i] + continuations[i] for i in rows], pad_id)
        target_mask = torch.arange(window) >= window - n_tokens[rows, None]
        position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                       position_ids=position_ids.to(device),
                       **_logits_kept(model, window + 1)).logits[:, -(window + 1):-1].float()
        targets = input_ids[:, -window:].to(device)
        token_lp = F.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        logprob[torch.tensor(rows)] = (token_lp * target_mask.to(device)).sum(-1).double().cpu()
    return Scores(logprob=logprob, n_tokens=n_tokens, tokens_processed=sum(lengths))


def normalise(logprob: torch.Tensor, n_tokens: torch.Tensor, n_chars: torch.Tensor,
              length_norm: str) -> torch.Tensor:
    """Rank score of each choice: summed log-prob, or per token / per character."""
    divisor = {"none": 1, "token": n_tokens, "char": n_chars}.get(length_norm)
    if divisor is None:
        raise UserError(f"unknown scorer.length_norm '{length_norm}'; use none, token or char")
    return logprob / divisor


def common_prefix_length(seqs: list[list[int]]) -> int:
    """Tokens all sequences start with, less at least one each (its logits predict what follows)."""
    return max(0, min(len(os.path.commonprefix(seqs)), min(map(len, seqs)) - 1))


class PrefixCache:
    """The KV cache of a shared prefix (demos + template head), reused by every batch of a test."""

    tokens: tuple[int, ...] = ()
    cache = None

    def get(self, model, prefix: list[int]) -> tuple[object, int]:
        """(batch-1 cache of `prefix`, tokens run to build it)."""
        if tuple(prefix) == self.tokens and self.cache is not None:
            return self.cache, 0
        self.cache = prefill(model, torch.tensor([prefix], device=next(model.parameters()).device))
        self.tokens = tuple(prefix)
        return self.cache, len(prefix)


class ChoiceTrie(NamedTuple):
    """The choices as a prefix tree: `nodes`, each proper prefix of a choice once, shortest first;
    `parent`, each node's (-1: none); `predictor`, per choice token its node (-1: the context)."""

    nodes: list[tuple[int, ...]]
    parent: list[int]
    predictor: list[int]

    @classmethod
    def of(cls, choices: list[list[int]]) -> "ChoiceTrie":
        nodes = sorted({tuple(c[:t]) for c in choices for t in range(1, len(c))},
                       key=lambda n: (len(n), n))
        index = {node: i for i, node in enumerate(nodes)}
        return cls(nodes, [index.get(n[:-1], -1) for n in nodes],
                   [index.get(tuple(c[:t]), -1) for c in choices for t in range(len(c))])


def _choice_block(suffixes: list[list[int]], trie: ChoiceTrie, shared: int, pad_id: int,
                  dtype: torch.dtype):
    """(input ids, position ids, 4D mask over prefix + block, the columns predicting a choice
    token, which one each token reads) of the rows after the prefix: [left-padded own context |
    a column per trie node: its last token, at its position, seeing the context and ancestors]."""
    n_ctx = len(suffixes)
    context_ids, _ = left_pad(suffixes, pad_id)
    node_ids = torch.tensor([n[-1] for n in trie.nodes], dtype=torch.long).expand(n_ctx, -1)
    input_ids = torch.cat([context_ids, node_ids], dim=1)
    width, length = context_ids.size(1), input_ids.size(1)
    cols = torch.arange(length)
    depth = torch.tensor([0] * width + [len(n) - 1 for n in trie.nodes])
    own = torch.tensor([len(s) for s in suffixes])
    real_ctx = (cols < width) & (cols >= width - own[:, None])  # [n_ctx, length]
    position_ids = torch.where(cols < width, shared + cols - (width - own[:, None]),
                               shared + own[:, None] + depth).clamp(min=0)
    ancestor = torch.zeros(length, length, dtype=torch.bool)  # query column x key column
    for i, parent in enumerate(trie.parent):  # parents come first: their rows are complete
        if parent >= 0:
            ancestor[width + i] = ancestor[width + parent]
        ancestor[width + i, width + i] = True
    causal = cols[None, :] <= cols[:, None]  # a node's column comes after every context's
    query_real = real_ctx | (cols >= width)[None]
    allowed = (real_ctx[:, None, :] & causal[None] | ancestor[None]) & query_real[:, :, None]
    allowed |= torch.eye(length, dtype=torch.bool)  # a padding row sees itself: no empty softmax
    if shared:
        prefix_cols = query_real[:, :, None].expand(n_ctx, length, shared)
        allowed = torch.cat([prefix_cols, allowed], dim=-1)
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    columns, row = torch.unique(torch.tensor(trie.predictor) + width, return_inverse=True)
    return input_ids, position_ids, mask[:, None], columns, row


@torch.no_grad()
def shared_prefix_logprobs(model, contexts: list[list[int]], choices: list[list[int]],
                           pad_id: int, prefix_cache: PrefixCache | None = None,
                           shared: int | None = None) -> Scores:
    """log p(choice | context) for every context x choice (contexts outer), every token run once
    (docs/performance.md); `shared` caps the cached prefix, so that one serves every call."""
    param = next(model.parameters())
    device, n_ctx = param.device, len(contexts)
    common = common_prefix_length(contexts)
    shared = common if shared is None else min(shared, common)
    suffixes = [c[shared:] for c in contexts]
    trie = ChoiceTrie.of(choices)
    input_ids, position_ids, mask, columns, row = _choice_block(suffixes, trie, shared, pad_id,
                                                                param.dtype)
    kwargs = {"input_ids": input_ids.to(device), "position_ids": position_ids.to(device),
              "attention_mask": mask.to(device), "use_cache": bool(shared)}
    processed = sum(map(len, suffixes)) + n_ctx * len(trie.nodes)
    if shared:
        base, built = (prefix_cache or PrefixCache()).get(model, contexts[0][:shared])
        cache = copy.deepcopy(base)  # the model extends the copy, not the cached prefix
        cache.batch_repeat_interleave(n_ctx)
        kwargs["cache"] = cache
        processed += built
    keep = _logits_kept(model, columns.to(device))
    logits = model(**kwargs, **keep).logits
    if not keep:
        logits = logits[:, columns.to(device)]
    targets = torch.tensor([t for choice in choices for t in choice], device=device)
    token_lp = F.log_softmax(logits.float(), dim=-1)[:, row.to(device), targets]
    which = torch.tensor([c for c, choice in enumerate(choices) for _ in choice], device=device)
    sums = torch.zeros(n_ctx, len(choices), dtype=torch.float64, device=device)
    sums.index_add_(1, which, token_lp.double())
    n_tokens = torch.tensor([len(c) for c in choices]).repeat(n_ctx)
    return Scores(logprob=sums.flatten().cpu(), n_tokens=n_tokens, tokens_processed=processed)
