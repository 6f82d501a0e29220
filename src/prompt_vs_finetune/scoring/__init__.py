"""Scoring the test split on a local model: log-likelihoods of continuations (plain and
shared-prefix), batched generation, and the two per-task scorers built on them."""

from .logprobs import PrefixCache, continuation_logprobs, shared_prefix_logprobs, takes_cache
from .scorers import RankClassifier, Summarizer

__all__ = ["PrefixCache", "RankClassifier", "Summarizer", "build_scorer",
           "continuation_logprobs", "shared_prefix_logprobs", "takes_cache"]


def build_scorer(encoder, cfg) -> RankClassifier | Summarizer:
    """The task type's scorer, as the job's config sets it up (`scorer`, `decoding`)."""
    if encoder.task.kind.decodes:
        seed = int(cfg.seed if cfg.decoding.seed is None else cfg.decoding.seed)
        return Summarizer(encoder, cfg.decoding, score_batch_size=cfg.scorer.batch_size,
                          seed=seed)
    return RankClassifier(encoder, length_norm=cfg.scorer.length_norm,
                          batch_size=cfg.scorer.batch_size,
                          examples_per_batch=cfg.scorer.examples_per_batch,
                          share_prefix=cfg.scorer.share_prefix,
                          max_batch_tokens=cfg.scorer.max_batch_tokens,
                          calibration=cfg.scorer.calibration,
                          content_free=tuple(cfg.scorer.content_free))
