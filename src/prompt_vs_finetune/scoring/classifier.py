"""Rank classification of the test split. With `Summarizer`, the only part of a local job that
differs between task types."""

import torch

from ..tasks import PromptEncoder
from . import calibration
from .logprobs import (
    PrefixCache,
    choice_inputs,
    continuation_logprobs,
    normalise,
    shared_prefix_logprobs,
    takes_cache,
)


class RankClassifier:
    """Rank every verbalized label by its log-likelihood after the prompt. `share_prefix` runs
    the shared demos once (a cached prefix) and each prompt once for all labels; the plain
    path runs prompt + label per label (the same numbers, for models without 4D masks).
    `calibration`: what `predicted` is ranked by (none: `length_norm`; contextual or pmi)."""

    def __init__(self, encoder: PromptEncoder, length_norm: str, batch_size: int,
                 examples_per_batch: int, share_prefix: bool, max_batch_tokens: int | None,
                 calibration: str = "none", content_free: tuple[str, ...] = ()):
        self.encoder, self.task = encoder, encoder.task
        self.length_norm, self.calibration = length_norm, calibration
        self.batch_size, self.examples_per_batch = batch_size, examples_per_batch
        self.share_prefix, self.max_batch_tokens = share_prefix, max_batch_tokens
        self.content_free = tuple(content_free)
        self.references: dict[str, torch.Tensor] | None = None  # per test: weights may change
        self.prefix_cache = PrefixCache()
        # the label tokens run after one prompt: as a prefix tree when shared, else whole
        self.label_tokens = choice_inputs(encoder.choice_ids) if share_prefix \
            else sum(map(len, encoder.choice_ids))
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
        self.references = None

    def row_tokens(self, row: dict) -> int:
        """Width of a test row in a scoring batch: its prompt and every label after it."""
        return len(row["context_ids"]) + self.label_tokens

    def step(self, model, batch) -> tuple[list[dict], dict[str, int]]:
        contexts = batch["context_ids"]
        logprob, n_tokens, processed = self._logprobs(model, contexts)
        references, reference_tokens = self._references(model)
        # every ranking from the same log-likelihoods: summed and per character
        # (lm-evaluation-harness's acc / acc_norm), and both calibrations
        rankings = {"sum": logprob,
                    "char": normalise(logprob, n_tokens, self.choice_chars, "char"),
                    "contextual": calibration.contextual(logprob, references["contextual"]),
                    "pmi": calibration.pmi(logprob, references["pmi"])}
        ranked = normalise(logprob, n_tokens, self.choice_chars, self.length_norm)
        chosen = ranked if self.calibration == "none" else rankings[self.calibration]
        distribution = label_distribution(rankings, self.calibration)
        predicted = chosen.argmax(-1)
        top2 = distribution.topk(min(2, distribution.size(-1)), dim=-1).values
        margin = top2[:, 0] - (top2[:, 1] if top2.size(-1) > 1 else 0)  # over the runner-up
        best = {name: scores.argmax(-1) for name, scores in rankings.items()}
        rows = []
        for r, (index, gold, context) in enumerate(zip(batch["index"], batch["label"], contexts,
                                                       strict=True)):
            pred = int(predicted[r])
            rows.append({"index": index, "label": gold, "predicted": pred,
                         **{f"predicted_{name}": int(b[r]) for name, b in best.items()},
                         "score": float(chosen[r, pred]),
                         "confidence": float(distribution[r, pred]),
                         "margin": float(margin[r]), "gold_logprob": float(logprob[r, gold]),
                         "gold_tokens": int(n_tokens[r, gold]),
                         "gold_bytes": self.choice_bytes[gold],
                         # what one call runs: its prompt (demos included) and the labels
                         "call_tokens": len(context) + self.label_tokens,
                         "prefix_tokens": len(self.encoder.prefix_ids)})
        # the calibration inputs run once per test, like a deployment would: no call pays
        return rows, {"input_tokens": processed, "eval_only_tokens": reference_tokens}

    def _logprobs(self, model, contexts: list[list[int]]):
        """Summed log-likelihood and token count [contexts, labels], and the tokens run."""
        choices, pad_id = self.encoder.choice_ids, self.encoder.tokenizer.pad_token_id
        if self.share_prefix and takes_cache(model):
            scores = shared_prefix_logprobs(model, contexts, choices, pad_id, self.prefix_cache)
        else:
            scores = continuation_logprobs(
                model, [c for c in contexts for _ in choices], choices * len(contexts),
                pad_id=pad_id, batch_size=self.batch_size)
        shape = (len(contexts), len(choices))
        return scores.logprob.view(shape), scores.n_tokens.view(shape), scores.tokens_processed

    def _references(self, model) -> tuple[dict[str, torch.Tensor], int]:
        """The labels' log-likelihoods after the content-free inputs (in the same prompt) and
        after the domain premise, at the first test batch; the tokens that took (0 after)."""
        if self.references is not None:
            return self.references, 0
        contexts = [self.encoder.prompt_ids(text) for text in self.content_free]
        premise = (self.encoder.prefix_ids
                   + self.encoder.encode(self.task.prompt_parts()[1]))
        contexts.append(premise or [self.encoder.eos_id])  # a context needs a token
        logprob, _, processed = self._logprobs(model, contexts)
        self.references = {"contextual": logprob[:-1], "pmi": logprob[-1:]}
        return self.references, processed


def label_distribution(rankings: dict[str, torch.Tensor], calibration: str) -> torch.Tensor:
    """P(label | prompt) as a user reads it (ECE's confidence, the hybrid teacher's margin): the
    softmax of the summed (or calibrated) scores. Not of per-character scores, which is
    nearly flat: a fine-tuned model right 87% of the time had ECE 0.65 from it."""
    scores = rankings["sum"] if calibration == "none" else rankings[calibration]
    return torch.softmax(scores.double(), dim=-1)
