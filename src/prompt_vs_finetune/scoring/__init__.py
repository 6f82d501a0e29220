"""Scoring the test split on a local model: log-likelihoods of continuations (plain and
shared-prefix), batched generation, and the two per-task scorers built on them."""

from .logprobs import PrefixCache, continuation_logprobs, shared_prefix_logprobs, takes_cache
from .scorers import RankClassifier, Summarizer, build_scorer

__all__ = ["PrefixCache", "RankClassifier", "Summarizer", "build_scorer",
           "continuation_logprobs", "shared_prefix_logprobs", "takes_cache"]
