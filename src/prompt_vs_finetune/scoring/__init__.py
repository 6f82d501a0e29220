"""Scoring the test split on a local model: log-likelihoods, generation, the two scorers."""

from .scorers import RankClassifier, Summarizer, build_scorer

__all__ = ["RankClassifier", "Summarizer", "build_scorer"]
