"""Quality metrics, one definition each, for every backend and task type, and the vocabulary
of a logged key (`Key`). The task types (tasks/classification.py, tasks/generation.py) say
which metrics a run logs; this package computes them.

Computed through `evaluate`, from modules shipped in this folder: `evaluate.load("accuracy")`
downloads its script from the Hub; loading these folders works offline and computes the same
numbers (scikit-learn and rouge_score underneath). `evaluate` imports torch, so it is
imported on first use: the report reads these names without it.
"""

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from . import consistency

MODULES = Path(__file__).parent
UNPARSED = -1  # the predicted index of a reply that named no label
BOTH, LOCAL, HOSTED = ("local", "hosted"), ("local",), ("hosted",)

__all__ = ["BOTH", "HOSTED", "LOCAL", "UNPARSED", "Key", "consistency", "likelihood", "load",
           "perplexity", "rouge", "rouge_each"]


@dataclass(frozen=True)
class Key:
    """A logged metric: what it means, and which runs have it (tracking/keys.py lists them)."""

    meaning: str
    backends: tuple[str, ...] = BOTH
    fitted_only: bool = False  # logged only by arms that train (arm.fit)
    run: str = "job"  # job: every job run has it; parent: a sweep's parent run
    optional: bool = False  # present only when a switch or the run's length allows


@cache
def load(module: str):
    import evaluate

    return evaluate.load(str(MODULES / module))


def likelihood(logprobs: list[float], tokens: list[int], n_bytes: list[int]) -> dict[str, float]:
    """Perplexity per token, and bits per byte of the gold text: the tokenizer-independent
    one, which models with different vocabularies can be compared on."""
    return {"perplexity": perplexity(logprobs, tokens),
            "bits_per_byte": -sum(logprobs) / (math.log(2) * sum(n_bytes))}


def perplexity(gold_logprobs: list[float], gold_tokens: list[int]) -> float:
    """exp of the mean negative log-likelihood per gold-answer token, over all examples."""
    return math.exp(-sum(gold_logprobs) / sum(gold_tokens))


def rouge(predictions: list[str], references: list[list[str]]) -> dict[str, float]:
    """rouge1 / rouge2 / rougeL / rougeLsum F-measures (stemmed, best reference), averaged."""
    return load("rouge").compute(predictions=predictions, references=references)


def rouge_each(predictions: list[str], references: list[list[str]]) -> dict[str, list[float]]:
    """The same F-measures, one per example."""
    return load("rouge").compute(predictions=predictions, references=references,
                                 use_aggregator=False)
