"""ROUGE through `rouge_score`, as an `evaluate` module that loads from this folder.

Stemming on; with several references per example, each ROUGE type takes the reference that
scores best for that example (rouge_score's `score_multi`), then F-measures are averaged.
"""

import datasets
import evaluate
from rouge_score import rouge_scorer

from prompt_vs_finetune.metrics.module_info import metric_info

DESCRIPTION = "ROUGE-1/2/L/Lsum F-measure, stemmed, best reference per example."
INPUTS = """
Args:
    predictions (list of str): generated texts.
    references (list of list of str): one or more references per prediction.
    rouge_types (list of str): default rouge1, rouge2, rougeL, rougeLsum.
    use_stemmer (bool): Porter stemming (default True).
    use_aggregator (bool): the mean over examples (default True), or each example's score.
Returns:
    {rouge_type: mean F-measure in [0, 1], or the list of per-example F-measures}
"""


class Rouge(evaluate.Metric):
    def _info(self):
        return metric_info(DESCRIPTION, INPUTS, datasets.Features({
            "predictions": datasets.Value("string"),
            "references": datasets.Sequence(datasets.Value("string"))}),
            citation="Lin (2004), ROUGE: A Package for Automatic Evaluation of Summaries")

    def _compute(self, predictions, references, rouge_types=None, use_stemmer=True,
                 use_aggregator=True):
        rouge_types = rouge_types or ["rouge1", "rouge2", "rougeL", "rougeLsum"]
        scorer = rouge_scorer.RougeScorer(rouge_types, use_stemmer=use_stemmer)
        aggregate = {t: [] for t in rouge_types}
        for prediction, refs in zip(predictions, references, strict=True):
            scores = scorer.score_multi(refs, prediction)
            for rouge_type in rouge_types:
                aggregate[rouge_type].append(scores[rouge_type].fmeasure)
        if not use_aggregator:
            return aggregate
        return {t: sum(v) / len(v) if v else 0.0 for t, v in aggregate.items()}
