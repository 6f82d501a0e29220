"""Rank classification of the test split: every verbalized label ranked by its log-likelihood
after the prompt. With `Summarizer`, the only part of a local job that differs between task
types: the module, the arms, the metrics and the logging are shared."""

import torch

from ..tasks import PromptEncoder
from .logprobs import (
    PrefixCache,
    continuation_logprobs,
    normalise,
    shared_prefix_logprobs,
    takes_cache,
)


class RankClassifier:
    """Rank every verbalized label by its log-likelihood after the prompt.

    `share_prefix` runs the shared demos once (a cached prefix) and each prompt once for all
    labels; the plain path runs prompt + label as a separate sequence per label (the same
    numbers, for comparison and for models whose attention takes no 4D mask).
    """

    def __init__(self, encoder: PromptEncoder, length_norm: str, batch_size: int,
                 examples_per_batch: int, share_prefix: bool, max_batch_tokens: int | None):
        self.encoder = encoder
        self.max_batch_tokens = max_batch_tokens
        self.share_prefix = share_prefix
        self.prefix_cache = PrefixCache()
        self.task = encoder.task
        self.length_norm = length_norm
        self.batch_size = batch_size
        self.examples_per_batch = examples_per_batch
        self.label_tokens = sum(map(len, encoder.choice_ids))  # all labels after one prompt
        targets = [self.task.target(self.task.labels[n]) for n in self.task.label_names]
        self.choice_chars = torch.tensor([len(t) for t in targets])
        self.choice_bytes = [len(t.encode()) for t in targets]

    def test_rows(self, split) -> list[dict]:
        rows = [{"index": i, "context_ids": self.encoder.prompt_ids(row["text"]),
                 "label": self.task.label_names.index(row["label"])}
                for i, row in enumerate(split)]
        return sorted(rows, key=lambda row: len(row["context_ids"]))  # little padding

    def start(self) -> None:
        self.prefix_cache.clear()  # the weights may have changed since the last scoring

    def row_tokens(self, row: dict) -> int:
        """Width of a test row in a scoring batch: its prompt and every label after it."""
        return len(row["context_ids"]) + self.label_tokens

    def step(self, model, batch) -> tuple[list[dict], dict[str, int]]:
        contexts, choices = batch["context_ids"], self.encoder.choice_ids
        pad_id = self.encoder.tokenizer.pad_token_id
        if self.share_prefix and takes_cache(model):
            scores = shared_prefix_logprobs(model, contexts, choices, pad_id, self.prefix_cache)
        else:
            scores = continuation_logprobs(
                model, [c for c in contexts for _ in choices], choices * len(contexts),
                pad_id=pad_id, batch_size=self.batch_size)
        logprob = scores.logprob.view(len(contexts), len(choices))
        n_tokens = scores.n_tokens.view(len(contexts), len(choices))
        ranked = normalise(logprob, n_tokens, self.choice_chars, self.length_norm)
        predicted = ranked.argmax(-1)
        # the same log-likelihoods ranked both ways (lm-evaluation-harness's acc / acc_norm)
        by_sum = logprob.argmax(-1)
        by_char = normalise(logprob, n_tokens, self.choice_chars, "char").argmax(-1)
        rows = []
        for r, (index, gold, context) in enumerate(zip(batch["index"], batch["label"], contexts,
                                                       strict=True)):
            pred = int(predicted[r])
            rows.append({"index": index, "label": gold, "predicted": pred,
                         "predicted_sum": int(by_sum[r]), "predicted_char": int(by_char[r]),
                         "score": float(ranked[r, pred]),
                         "gold_logprob": float(logprob[r, gold]),
                         "gold_tokens": int(n_tokens[r, gold]),
                         "gold_bytes": self.choice_bytes[gold],
                         # what one call reads: its prompt (demos included) and every label
                         "call_tokens": len(context) + self.label_tokens,
                         "prefix_tokens": len(self.encoder.prefix_ids)})
        return rows, {"input_tokens": scores.tokens_processed}
