"""Summarization (any generation task) of the test split: decode an answer after the prompt,
and score the references' log-likelihood (their perplexity, an evaluation-only measure)."""

import torch

from ..tasks import PromptEncoder
from .generation import cut_at_stop, generate, generate_kwargs, stop_strings
from .logprobs import PrefixCache, continuation_logprobs, takes_cache


class Summarizer:
    """Decode an answer after the prompt; ROUGE against the references, and the perplexity of
    the references given the prompt."""

    def __init__(self, encoder: PromptEncoder, decoding, score_batch_size: int, seed: int):
        """`seed`: what sampling draws from (decoding.seed, or the job's seed)."""
        self.encoder = encoder
        self.max_batch_tokens = decoding.max_batch_tokens
        self.prefix_cache = PrefixCache()
        self.task = encoder.task
        self.tokenizer = encoder.tokenizer
        self.decoding = decoding
        self.seed = seed
        self.batch_size = score_batch_size
        self.examples_per_batch = int(decoding.batch_size)
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
        scores = continuation_logprobs(model, [p[0] for p in pairs], [p[1] for p in pairs],
                                       pad_id=self.tokenizer.pad_token_id,
                                       batch_size=self.batch_size)
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
        n_generated = sum(len(t) for t in generated)
        prompt_tokens = sum(len(c) for c in contexts)
        # the references' likelihood is evaluation only: no deployment pays for it
        return rows, {"input_tokens": prompt_tokens, "generated_tokens": n_generated,
                      "eval_only_tokens": scores.tokens_processed}
