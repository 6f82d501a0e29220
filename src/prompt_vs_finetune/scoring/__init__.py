"""Scoring the test split on a local model: log-likelihoods of continuations (plain and
shared-prefix), batched generation, and the two per-task scorers built on them."""

from .scorers import RankClassifier, Summarizer, build_scorer

__all__ = ["RankClassifier", "Summarizer", "build_scorer"]
