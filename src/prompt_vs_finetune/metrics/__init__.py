"""Quality metrics, one definition each, for every backend: a run's per-example predictions
in, `test/*` values out.

Computed through `evaluate`, from modules shipped in this folder: `evaluate.load("accuracy")`
downloads its script from the Hub; loading these folders works offline and computes the same
numbers (scikit-learn and rouge_score underneath).
"""

import math
from functools import cache
from pathlib import Path

import evaluate

from ..errors import UserError
from . import consistency

MODULES = Path(__file__).parent
CLASSIFICATION_METRICS = ("accuracy", "macro_f1")
KNOWN = {"classification": CLASSIFICATION_METRICS, "generation": ("rouge",)}  # task.metrics
UNPARSED = -1  # the predicted index of a reply that named no label
RANKINGS = ("sum", "char", "contextual", "pmi")  # rank classification: how labels are ranked


@cache
def load(module: str) -> evaluate.EvaluationModule:
    return evaluate.load(str(MODULES / module))


PER_EXAMPLE = {"classification": "accuracy", "generation": "rougeL"}  # what the report resamples


def score(task_type: str, names: tuple[str, ...],
          rows: list[dict]) -> tuple[dict[str, float], list[float]]:
    """(`test/*` metrics of a run's predictions (one dict per test example), each example's
    quality as `per_example` defines it), from one pass: ROUGE is computed once."""
    if task_type == "classification":
        values, each = classification(names, rows), per_example(task_type, rows)
    else:
        scores = rouge_each([r["generated"] for r in rows], [r["references"] for r in rows])
        values, each = generation(rows, scores), scores["rougeL"]
    return {f"test/{name}": value for name, value in values.items()}, each


def per_example(task_type: str, rows: list[dict]) -> list[float]:
    """Each test example's quality (in test-split order): 1/0 for a right/wrong label, its
    ROUGE-L F-measure for a summary. Their mean is test/accuracy or test/rougeL; the report
    resamples them for intervals that include test-set noise."""
    if task_type == "classification":
        return [float(r["predicted"] == r["label"]) for r in rows]
    return rouge_each([r["generated"] for r in rows], [r["references"] for r in rows])["rougeL"]


def classification(names: tuple[str, ...], rows: list[dict]) -> dict[str, float]:
    """The task's metrics (`names`: accuracy, macro_f1) over rows with a gold `label` index and
    a `predicted` index (None: the reply named no label, which counts as wrong). Macro-F1
    averages over the gold labels, as scikit-learn does by default: an unparsed reply is
    never a class of its own. Perplexity where the backend scored the gold label."""
    gold = [r["label"] for r in rows]
    predicted = [UNPARSED if r["predicted"] is None else r["predicted"] for r in rows]
    results = {}
    for name in names:
        if name == "accuracy":
            results[name] = load("accuracy").compute(
                predictions=predicted, references=gold)["accuracy"]
        elif name == "macro_f1":
            results[name] = load("f1").compute(predictions=predicted, references=gold,
                                               average="macro", labels=sorted(set(gold)))["f1"]
        else:
            raise UserError(f"unknown metric '{name}' in task.metrics; use "
                            f"{', '.join(CLASSIFICATION_METRICS)}")
    results["unparsed_rate"] = sum(r["predicted"] is None for r in rows) / len(rows)
    for ranking in RANKINGS:  # ranked by likelihood: every ranking, from one pass
        if f"predicted_{ranking}" in rows[0]:
            results[f"accuracy_{ranking}"] = sum(r[f"predicted_{ranking}"] == r["label"]
                                                 for r in rows) / len(rows)
    if "confidence" in rows[0]:
        results["ece"] = consistency.expected_calibration_error(
            [r["confidence"] for r in rows], [r["predicted"] == r["label"] for r in rows])
    if "gold_logprob" in rows[0]:
        results.update(likelihood([r["gold_logprob"] for r in rows],
                                  [r["gold_tokens"] for r in rows],
                                  [r["gold_bytes"] for r in rows]))
    return results


def generation(rows: list[dict],
               scores: dict[str, list[float]] | None = None) -> dict[str, float]:
    """ROUGE of `generated` against `references` (the mean of the per-example `scores` when
    given, as `rouge_each` returns them), the mean generated length in tokens, and the
    references' perplexity where the backend scored them."""
    if scores is None:
        scores = rouge_each([r["generated"] for r in rows], [r["references"] for r in rows])
    values = {name: sum(each) / len(each) if each else 0.0 for name, each in scores.items()}
    values["gen_length_mean"] = sum(r["generated_tokens"] for r in rows) / len(rows)
    values.update(consistency.generation(rows))
    if "ref_logprob" in rows[0]:
        values.update(likelihood([r["ref_logprob"] for r in rows],
                                 [r["ref_tokens"] for r in rows],
                                 [r["ref_bytes"] for r in rows]))
    return values


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
