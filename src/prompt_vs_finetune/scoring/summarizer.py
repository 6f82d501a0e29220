"""Generation tasks' scorer: decode an answer after the prompt, and score the references'
log-likelihood (their perplexity, an evaluation-only measure)."""

import torch

from ..tasks import PromptEncoder
from .generation import cut_at_stop, generate, generate_kwargs, stop_strings
from .logprobs import (
    PrefixCache,
    Scores,
    continuation_logprobs,
    shared_prefix_logprobs,
    takes_cache,
)


class Summarizer:
    def __init__(self, encoder: PromptEncoder, decoding, score_batch_size: int, seed: int):
        """`seed`: what sampling draws from (decoding.seed, or the job's seed)."""
        self.encoder, self.task, self.tokenizer = encoder, encoder.task, encoder.tokenizer
        self.seed, self.batch_size = seed, score_batch_size
        self.max_batch_tokens = decoding.max_batch_tokens
        self.examples_per_batch = int(decoding.batch_size)
        self.prefix_cache = PrefixCache()
        self.reference_cache = PrefixCache()  # the demos' keys/values, for the references
        self.stops = stop_strings(self.task.stop, decoding)
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
