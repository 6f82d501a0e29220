"""Task metrics through `evaluate`, from modules shipped in this folder.

`evaluate.load("accuracy")` downloads its script from the Hub; loading these folders works
offline and computes the same numbers (scikit-learn underneath).
"""

import math
from functools import cache
from pathlib import Path

import evaluate

from ..errors import UserError

MODULES = Path(__file__).parent


@cache
def load(module: str) -> evaluate.EvaluationModule:
    return evaluate.load(str(MODULES / module))


def classification_metrics(names: tuple[str, ...], predictions: list[int],
                           references: list[int], labels: list[int] | None = None
                           ) -> dict[str, float]:
    """{metric name: value} for the task's `metrics` list (accuracy, macro_f1); `labels`, if
    given, are the classes macro-F1 averages over (an API model's unparsed replies are a
    prediction, not a class)."""
    results = {}
    for name in names:
        if name == "accuracy":
            results[name] = load("accuracy").compute(
                predictions=predictions, references=references)["accuracy"]
        elif name == "macro_f1":
            # macro over the labels that occur in the gold set, as sklearn does by default
            results[name] = load("f1").compute(
                predictions=predictions, references=references, average="macro",
                labels=labels)["f1"]
        else:
            raise UserError(f"unknown metric '{name}' in task.metrics; use accuracy, macro_f1")
    return results


def perplexity(gold_logprobs: list[float], gold_tokens: list[int]) -> float:
    """exp of the mean negative log-likelihood per gold-answer token, over all examples."""
    return math.exp(-sum(gold_logprobs) / sum(gold_tokens))


def rouge(predictions: list[str], references: list[list[str]]) -> dict[str, float]:
    """rouge1 / rouge2 / rougeL / rougeLsum F-measures (stemmed, best reference)."""
    return load("rouge").compute(predictions=predictions, references=references)
