"""Quality metrics, one definition each (scikit-learn and rouge_score, imported on first use:
the report reads these names without them), and `Key`, what a logged metric is."""

import math
import statistics
from dataclasses import dataclass

UNPARSED = -1  # the predicted index of a reply that named no label
BOTH, LOCAL, HOSTED = ("local", "hosted"), ("local",), ("hosted",)
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


@dataclass(frozen=True)
class Key:
    """A logged metric: what it means, and which runs have it (tracking/keys.py lists them)."""

    meaning: str
    backends: tuple[str, ...] = BOTH
    fitted_only: bool = False  # logged only by arms that train (arm.fit)
    run: str = "job"  # job: every job run has it; parent: a sweep's parent run
    optional: bool = False  # present only when a switch or the run's length allows


def accuracy(predicted: list[int], gold: list[int]) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(gold, predicted))


def macro_f1(predicted: list[int], gold: list[int], labels: list[int]) -> float:
    """F1 averaged over `labels`, each weighing the same (one never predicted counts, as 0)."""
    from sklearn.metrics import f1_score

    return float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0))


def likelihood(logprobs: list[float], tokens: list[int], n_bytes: list[int]) -> dict[str, float]:
    """Perplexity per token, and bits per byte of the gold text (it compares any tokenizers)."""
    return {"perplexity": perplexity(logprobs, tokens),
            "bits_per_byte": -sum(logprobs) / (math.log(2) * sum(n_bytes))}


def perplexity(gold_logprobs: list[float], gold_tokens: list[int]) -> float:
    """exp of the mean negative log-likelihood per gold-answer token, over all examples."""
    return math.exp(-sum(gold_logprobs) / sum(gold_tokens))


def rouge_each(predictions: list[str], references: list[list[str]]) -> dict[str, list[float]]:
    """Stemmed ROUGE F-measures per example, averaged over its references as DialogSum scores
    (Chen et al. 2021), and `<type>_best` against its best-scoring reference."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    scores = [[scorer.score(ref, prediction) for ref in refs]
              for prediction, refs in zip(predictions, references, strict=True)]
    return {f"{rouge_type}{way}": [how(s[rouge_type].fmeasure for s in each) for each in scores]
            for rouge_type in ROUGE_TYPES for way, how in (("", statistics.fmean), ("_best", max))}
