"""How the test split is scored, per task type. The only part of a job that differs between
classification and generation: the module, the arms and the logging are shared."""

import torch

from . import metrics
from .artifacts import log_classification_artifacts, log_generation_artifacts
from .generation import cut_at_stop, generate, generate_kwargs
from .prompts import PromptEncoder
from .scoring import (
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

    def __init__(self, encoder: PromptEncoder, length_norm: str = "none", batch_size: int = 64,
                 examples_per_batch: int = 8, share_prefix: bool = True,
                 max_batch_tokens: int | None = None):
        self.encoder = encoder
        self.max_batch_tokens = max_batch_tokens
        self.share_prefix = share_prefix
        self.prefix_cache = PrefixCache()
        self.task = encoder.task
        self.length_norm = length_norm
        self.batch_size = batch_size
        self.examples_per_batch = examples_per_batch
        self.label_tokens = sum(map(len, encoder.choice_ids))  # all labels after one prompt
        self.choice_chars = torch.tensor([len(self.task.target(self.task.labels[n]))
                                          for n in self.task.label_names])

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
        rows = []
        for r, (index, gold) in enumerate(zip(batch["index"], batch["label"], strict=True)):
            pred = int(predicted[r])
            rows.append({"index": index, "label": gold, "predicted": pred,
                         "score": float(ranked[r, pred]),
                         "gold_logprob": float(logprob[r, gold]),
                         "gold_tokens": int(n_tokens[r, gold])})
        return rows, {"tokens": scores.tokens_processed}

    def metrics(self, rows: list[dict]) -> dict[str, float]:
        values = metrics.classification_metrics(
            self.task.metrics, [r["predicted"] for r in rows], [r["label"] for r in rows])
        values["perplexity"] = metrics.perplexity([r["gold_logprob"] for r in rows],
                                                  [r["gold_tokens"] for r in rows])
        return values

    def log_artifacts(self, split, rows: list[dict], title: str) -> None:
        log_classification_artifacts(split["text"], rows, self.task.label_names, title)


class Summarizer:
    """Decode an answer after the prompt; ROUGE against the references, and the perplexity of
    the references given the prompt."""

    def __init__(self, encoder: PromptEncoder, decoding, score_batch_size: int = 64):
        self.encoder = encoder
        self.max_batch_tokens = decoding.get("max_batch_tokens")
        self.prefix_cache = PrefixCache()
        self.task = encoder.task
        self.tokenizer = encoder.tokenizer
        self.decoding = decoding
        self.batch_size = score_batch_size
        self.examples_per_batch = int(decoding.batch_size)
        self.stops = tuple(s for s in (*self.task.stop, *(decoding.get("stop") or ())) if s)
        self.kwargs = generate_kwargs(decoding, self.tokenizer, self.task.stop)

    def test_rows(self, split) -> list[dict]:
        rows = [{"index": i, "context_ids": self.encoder.prompt_ids(row["text"]),
                 "references": row["references"]} for i, row in enumerate(split)]
        # similar lengths share a batch: little left padding to generate through
        return sorted(rows, key=lambda row: len(row["context_ids"]))

    def row_tokens(self, row: dict) -> int:
        """Width of a test row in a generate() batch: its prompt and the tokens to write."""
        return len(row["context_ids"]) + self.kwargs["max_new_tokens"]

    def start(self) -> None:
        self.prefix_cache.clear()  # the weights may have changed since the last scoring
        if self.kwargs["do_sample"]:
            torch.manual_seed(int(self.decoding.seed))

    def step(self, model, batch) -> tuple[list[dict], dict[str, int]]:
        contexts = batch["context_ids"]
        generated = generate(model, contexts, self.kwargs,
                             self.prefix_cache if takes_cache(model) else None)
        # a reference longer than the room left after the prompt is scored on what fits
        pairs = [(ctx, self.encoder.encode(self.task.target(ref))[: self.encoder.max_length
                                                                  - len(ctx)])
                 for ctx, refs in zip(contexts, batch["references"], strict=True) for ref in refs]
        scores = continuation_logprobs(model, [p[0] for p in pairs], [p[1] for p in pairs],
                                       pad_id=self.tokenizer.pad_token_id,
                                       batch_size=self.batch_size)
        rows, offset = [], 0
        for index, refs, tokens in zip(batch["index"], batch["references"], generated,
                                       strict=True):
            text = cut_at_stop(self.tokenizer.decode(tokens, skip_special_tokens=True),
                               self.stops)
            span = slice(offset, offset + len(refs))
            offset += len(refs)
            rows.append({"index": index, "references": refs, "generated": text,
                         "generated_tokens": len(tokens),
                         "ref_logprob": float(scores.logprob[span].sum()),
                         "ref_tokens": int(scores.n_tokens[span].sum())})
        n_generated = sum(len(t) for t in generated)
        prompt_tokens = sum(len(c) for c in contexts)
        return rows, {"tokens": prompt_tokens + n_generated + scores.tokens_processed,
                      "generated_tokens": n_generated}

    def metrics(self, rows: list[dict]) -> dict[str, float]:
        values = metrics.rouge([r["generated"] for r in rows], [r["references"] for r in rows])
        values["perplexity"] = metrics.perplexity([r["ref_logprob"] for r in rows],
                                                  [r["ref_tokens"] for r in rows])
        values["gen_length_mean"] = sum(r["generated_tokens"] for r in rows) / len(rows)
        return values

    def log_artifacts(self, split, rows: list[dict], title: str) -> None:
        log_generation_artifacts(split["text"], rows, title)
