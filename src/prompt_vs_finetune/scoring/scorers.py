"""The task types' scorers of the test split on a local model: rank classification and
generation. With the task types, the only part of a local job that differs between them."""

import torch

from ..tasks import PromptEncoder
from . import calibration
from .generation import cut_at_stop, generate, generate_kwargs, stop_strings
from .logprobs import (
    PrefixCache,
    Scores,
    choice_inputs,
    continuation_logprobs,
    normalise,
    shared_prefix_logprobs,
    takes_cache,
)


class _Scorer:
    """The test rows, sorted by prompt length (little padding in a batch), and the cache of
    the demos' keys and values, cleared before each test (the weights may have changed)."""

    def __init__(self, encoder: PromptEncoder, batch_size: int, examples_per_batch: int,
                 max_batch_tokens: int | None):
        self.encoder, self.task = encoder, encoder.task
        self.batch_size, self.examples_per_batch = batch_size, examples_per_batch
        self.max_batch_tokens = max_batch_tokens
        self.prefix_cache = PrefixCache()

    def test_rows(self, split) -> list[dict]:
        rows = [{"index": i, "context_ids": self.encoder.prompt_ids(row["text"]),
                 **self._answer(row)} for i, row in enumerate(split)]
        return sorted(rows, key=lambda row: len(row["context_ids"]))

    def start(self) -> None:
        self.prefix_cache.clear()


class RankClassifier(_Scorer):
    """Rank every verbalized label by its log-likelihood after the prompt. `share_prefix` runs
    the shared demos once (a cached prefix) and each prompt once for all labels; the plain
    path runs prompt + label per label (the same numbers, for models without 4D masks).
    `calibration`: what `predicted` is ranked by (none: `length_norm`; contextual or pmi)."""

    def __init__(self, encoder: PromptEncoder, length_norm: str, batch_size: int,
                 examples_per_batch: int, share_prefix: bool, max_batch_tokens: int | None,
                 calibration: str = "none", content_free: tuple[str, ...] = ()):
        super().__init__(encoder, batch_size, examples_per_batch, max_batch_tokens)
        self.length_norm, self.calibration = length_norm, calibration
        self.share_prefix, self.content_free = share_prefix, tuple(content_free)
        self.references: dict[str, torch.Tensor] | None = None  # per test: weights may change
        # the label tokens run after one prompt: as a prefix tree when shared, else whole
        self.label_tokens = choice_inputs(encoder.choice_ids) if share_prefix \
            else sum(map(len, encoder.choice_ids))
        targets = [self.task.target(self.task.labels[n]) for n in self.task.label_names]
        self.choice_chars = torch.tensor([len(t) for t in targets])
        self.choice_bytes = [len(t.encode()) for t in targets]

    def _answer(self, row) -> dict:
        return {"label": self.task.label_names.index(row["label"])}

    def start(self) -> None:
        super().start()
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


class Summarizer(_Scorer):
    """Decode an answer after the prompt, and score the references' log-likelihood."""

    def __init__(self, encoder: PromptEncoder, decoding, score_batch_size: int, seed: int):
        """`seed`: what sampling draws from (decoding.seed, or the job's seed)."""
        super().__init__(encoder, score_batch_size, int(decoding.batch_size),
                         decoding.max_batch_tokens)
        self.tokenizer, self.seed = encoder.tokenizer, seed
        self.reference_cache = PrefixCache()  # the demos' keys/values, for the references
        self.stops = stop_strings(self.task.stop, decoding)
        self.kwargs = generate_kwargs(decoding, self.tokenizer, self.task.stop)

    def _answer(self, row) -> dict:
        return {"references": row["references"]}

    def row_tokens(self, row: dict) -> int:
        """Width of a test row in a generate() batch: its prompt and the tokens to write."""
        return len(row["context_ids"]) + self.kwargs["max_new_tokens"]

    def start(self) -> None:
        super().start()
        self.reference_cache.clear()
        if self.kwargs["do_sample"]:
            torch.manual_seed(self.seed)

    def step(self, model, batch) -> tuple[list[dict], dict[str, int]]:
        contexts = batch["context_ids"]
        generated = generate(model, contexts, self.kwargs,
                             self.prefix_cache if takes_cache(model) else None)
        # a reference longer than the room left after the prompt is scored on what fits
        pairs = [(ctx, self.encoder.encode(self.task.target(ref))[: self.encoder.max_length
                                                                  - len(ctx)])
                 for ctx, refs in zip(contexts, batch["references"], strict=True) for ref in refs]
        scores = self._reference_logprobs(model, pairs, [len(r) for r in batch["references"]])
        rows, offset = [], 0
        for index, refs, tokens, context in zip(batch["index"], batch["references"], generated,
                                                contexts, strict=True):
            text = cut_at_stop(self.tokenizer.decode(tokens, skip_special_tokens=True),
                               self.stops)
            span = slice(offset, offset + len(refs))
            offset += len(refs)
            scored = [p[1] for p in pairs[span]]  # the reference tokens as scored (cut to fit)
            rows.append({"index": index, "references": refs, "generated": text,
                         "generated_tokens": len(tokens),
                         # no end-of-text within the limit (a stop string ends it sooner)
                         "hit_limit": len(tokens) >= self.kwargs["max_new_tokens"],
                         "ref_logprob": float(scores.logprob[span].sum()),
                         "ref_tokens": int(scores.n_tokens[span].sum()),
                         "ref_bytes": sum(len(self.tokenizer.decode(ids).encode())
                                          for ids in scored),
                         "call_tokens": len(context),
                         "prefix_tokens": len(self.encoder.prefix_ids)})
        # the references' likelihood is evaluation only: no deployment pays for it
        return rows, {"input_tokens": sum(map(len, contexts)),
                      "generated_tokens": sum(map(len, generated)),
                      "eval_only_tokens": scores.tokens_processed}

    def _reference_logprobs(self, model, pairs: list[tuple[list[int], list[int]]],
                            per_context: list[int]) -> Scores:
        """log p(reference | prompt) per pair. With a KV cache each prompt runs once for all
        its references, after the cached demos (DialogSum: ~260 tokens a row, not ~600)."""
        pad_id = self.tokenizer.pad_token_id
        if not takes_cache(model):
            return continuation_logprobs(model, [p[0] for p in pairs], [p[1] for p in pairs],
                                         pad_id=pad_id, batch_size=self.batch_size)
        parts, start = [], 0
        for n in per_context:
            context, refs = pairs[start][0], [p[1] for p in pairs[start:start + n]]
            parts.append(shared_prefix_logprobs(model, [context], refs, pad_id,
                                                self.reference_cache,
                                                shared=len(self.encoder.prefix_ids)))
            start += n
        return Scores(logprob=torch.cat([p.logprob for p in parts]),
                      n_tokens=torch.cat([p.n_tokens for p in parts]),
                      tokens_processed=sum(p.tokens_processed for p in parts))
