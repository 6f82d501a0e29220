"""The two scorers of the test split on a local model: rank classification and generation."""

import torch

from ..tasks import PromptEncoder
from .generation import cut_at_stop, generate, generate_kwargs
from .logprobs import (
    ChoiceTrie,
    PrefixCache,
    Scores,
    continuation_logprobs,
    normalise,
    shared_prefix_logprobs,
    takes_cache,
)


def build_scorer(encoder: PromptEncoder, scorer, decoding, seed: int):
    """The task type's scorer; sampling draws from the job's `seed` unless decoding.seed is set."""
    if encoder.task.kind.decodes:
        return Summarizer(encoder, decoding, score_batch_size=scorer.batch_size,
                          seed=int(seed if decoding.seed is None else decoding.seed))
    return RankClassifier(encoder, scorer)


class _Scorer:
    """The test rows sorted by prompt length; the demos' KV cache, anew for each test (weights)."""

    def __init__(self, encoder: PromptEncoder, batch_size: int, examples_per_batch: int,
                 max_batch_tokens: int | None):
        self.encoder, self.task, self.batch_size = encoder, encoder.task, batch_size
        self.examples_per_batch, self.max_batch_tokens = examples_per_batch, max_batch_tokens
        self.prefix_cache = PrefixCache()

    def test_rows(self, split) -> list[dict]:
        rows = [{"index": i, "context_ids": self.encoder.prompt_ids(row["text"]),
                 **self._answer(row)} for i, row in enumerate(split)]
        return sorted(rows, key=lambda row: len(row["context_ids"]))

    def row_tokens(self, row: dict) -> int:
        return len(row["context_ids"]) + self.answer_tokens  # the prompt and what follows it

    def start(self) -> None:
        self.prefix_cache = PrefixCache()


class RankClassifier(_Scorer):
    """Rank every verbalized label by its log-likelihood after the prompt: every token run once
    (`share_prefix`), or prompt + label per label (the same numbers; models without 4D masks)."""

    def __init__(self, encoder: PromptEncoder, scorer):
        super().__init__(encoder, scorer.batch_size, scorer.examples_per_batch,
                         scorer.max_batch_tokens)
        self.length_norm, self.calibration = scorer.length_norm, scorer.calibration
        self.share_prefix, self.content_free = scorer.share_prefix, tuple(scorer.content_free)
        self.references: dict[str, torch.Tensor] | None = None  # per test, like prefix_cache
        # the label tokens run after one prompt: as a prefix tree when shared, else whole
        self.answer_tokens = len(ChoiceTrie.of(encoder.choice_ids).nodes) if self.share_prefix \
            else sum(map(len, encoder.choice_ids))
        targets = [self.task.target(verbal) for verbal in self.task.labels.values()]
        self.choice_chars = torch.tensor([len(t) for t in targets])
        self.choice_bytes = [len(t.encode()) for t in targets]

    def _answer(self, row) -> dict:
        return {"label": self.task.label_names.index(row["label"])}

    def start(self) -> None:
        super().start()
        self.references = None

    def step(self, model, batch) -> tuple[list[dict], dict[str, int]]:
        contexts = batch["context_ids"]
        logprob, n_tokens, processed = self._logprobs(model, contexts)
        references, reference_tokens = self._references(model)
        rankings = {"sum": logprob,
                    "char": normalise(logprob, n_tokens, self.choice_chars, "char"),
                    "contextual": contextual(logprob, references["contextual"]),
                    "pmi": pmi(logprob, references["pmi"])}
        chosen = rankings[self.calibration] if self.calibration != "none" \
            else normalise(logprob, n_tokens, self.choice_chars, self.length_norm)
        probs = label_distribution(rankings, self.calibration)
        predicted = chosen.argmax(-1)
        top2 = probs.topk(min(2, probs.size(-1)), dim=-1).values
        margin = top2[:, 0] - (top2[:, 1] if top2.size(-1) > 1 else 0)  # over the runner-up
        best = {name: scores.argmax(-1) for name, scores in rankings.items()}
        rows = []
        for r, index in enumerate(batch["index"]):
            gold, pred = batch["label"][r], int(predicted[r])
            rows.append({"index": index, "label": gold, "predicted": pred,
                         **{f"predicted_{name}": int(b[r]) for name, b in best.items()},
                         "score": float(chosen[r, pred]), "confidence": float(probs[r, pred]),
                         "margin": float(margin[r]), "gold_logprob": float(logprob[r, gold]),
                         "gold_tokens": int(n_tokens[r, gold]),
                         "gold_bytes": self.choice_bytes[gold],
                         "call_tokens": len(contexts[r]) + self.answer_tokens,  # prompt, labels
                         "prefix_tokens": len(self.encoder.prefix_ids)})
        # the calibration inputs run once per test, like a deployment would: no call pays
        return rows, {"input_tokens": processed, "eval_only_tokens": reference_tokens}

    def _logprobs(self, model, contexts: list[list[int]]):
        """(log-likelihood, token count) [contexts, labels], and the tokens run."""
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
        """The labels' scores after the content-free inputs and the premise, once; tokens run."""
        if self.references is not None:
            return self.references, 0
        contexts = [self.encoder.prompt_ids(text) for text in self.content_free]
        premise = self.encoder.prefix_ids + self.encoder.encode(self.task.prompt_parts()[1])
        contexts.append(premise or [self.encoder.eos_id])  # a context needs a token
        logprob, _, processed = self._logprobs(model, contexts)
        self.references = {"contextual": logprob[:-1], "pmi": logprob[-1:]}
        return self.references, processed


def label_distribution(rankings: dict[str, torch.Tensor], calibration: str) -> torch.Tensor:
    """P(label | prompt) (ECE's confidence, the teacher's margin): the softmax of the summed or
    calibrated scores; of per-character ones it is near flat (ECE 0.65 at 87% accuracy)."""
    scores = rankings["sum"] if calibration == "none" else rankings[calibration]
    return torch.softmax(scores.double(), dim=-1)


def contextual(logprob: torch.Tensor, content_free: torch.Tensor) -> torch.Tensor:
    """Contextual calibration (Zhao et al. 2021) by `content_free` [inputs, labels] scores."""
    p_cf = torch.log_softmax(content_free.double(), dim=-1).exp().mean(0)
    return torch.log_softmax(torch.log_softmax(logprob.double(), dim=-1) - p_cf.log(), dim=-1)


def pmi(logprob: torch.Tensor, premise: torch.Tensor) -> torch.Tensor:
    """Domain-conditional PMI (Holtzman et al. 2021): less the `premise` [1, labels] scores."""
    return torch.log_softmax(logprob.double() - premise.double(), dim=-1)


class Summarizer(_Scorer):
    """Decode an answer after the prompt, and score the references' log-likelihood."""

    def __init__(self, encoder: PromptEncoder, decoding, score_batch_size: int, seed: int):
        super().__init__(encoder, score_batch_size, int(decoding.batch_size),
                         decoding.max_batch_tokens)
        self.tokenizer, self.seed = encoder.tokenizer, seed
        self.reference_cache = PrefixCache()  # the demos' KV cache, for the references
        self.kwargs = generate_kwargs(decoding, self.tokenizer, self.task.stop)
        self.answer_tokens = self.kwargs["max_new_tokens"]  # the most it writes
        self.stops = tuple(self.kwargs.get("stop_strings", ()))

    def _answer(self, row) -> dict:
        return {"references": row["references"]}

    def start(self) -> None:
        super().start()
        self.reference_cache = PrefixCache()
        if self.kwargs["do_sample"]:
            torch.manual_seed(self.seed)

    def step(self, model, batch) -> tuple[list[dict], dict[str, int]]:
        contexts, references = batch["context_ids"], batch["references"]
        generated = generate(model, contexts, self.kwargs,
                             self.prefix_cache if takes_cache(model) else None)
        # a reference longer than the room left after the prompt is scored on what fits
        scored = [[self.encoder.encode(self.task.target(ref))[: self.encoder.max_length - len(ctx)]
                   for ref in refs] for ctx, refs in zip(contexts, references, strict=True)]
        scores = self._reference_logprobs(model, contexts, scored)
        rows, end = [], 0
        for index, refs, ref_ids, tokens, context in zip(
                batch["index"], references, scored, generated, contexts, strict=True):
            span, end = slice(end, end + len(refs)), end + len(refs)
            text = cut_at_stop(self.tokenizer.decode(tokens, skip_special_tokens=True), self.stops)
            rows.append({"index": index, "references": refs, "generated": text,
                         "generated_tokens": len(tokens),
                         "hit_limit": len(tokens) >= self.kwargs["max_new_tokens"],  # never ended
                         "ref_logprob": float(scores.logprob[span].sum()),
                         "ref_tokens": int(scores.n_tokens[span].sum()),
                         "ref_bytes": sum(len(self.tokenizer.decode(ids).encode())
                                          for ids in ref_ids),
                         "call_tokens": len(context),
                         "prefix_tokens": len(self.encoder.prefix_ids)})
        # the references' likelihood is evaluation only: no deployment pays for it
        return rows, {"input_tokens": sum(map(len, contexts)),
                      "generated_tokens": sum(map(len, generated)),
                      "eval_only_tokens": scores.tokens_processed}

    def _reference_logprobs(self, model, contexts: list[list[int]],
                            references: list[list[list[int]]]) -> Scores:
        """log p(reference | prompt), in order; with a KV cache each prompt runs once for all."""
        pad_id = self.tokenizer.pad_token_id
        if not takes_cache(model):
            return continuation_logprobs(
                model, [ctx for ctx, refs in zip(contexts, references, strict=True) for _ in refs],
                [ref for refs in references for ref in refs], pad_id=pad_id,
                batch_size=self.batch_size)
        parts = [shared_prefix_logprobs(model, [ctx], refs, pad_id, self.reference_cache,
                                        shared=len(self.encoder.prefix_ids))
                 for ctx, refs in zip(contexts, references, strict=True)]
        return Scores(torch.cat([p.logprob for p in parts]), torch.cat([p.n_tokens for p in parts]),
                      sum(p.tokens_processed for p in parts))
