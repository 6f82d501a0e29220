"""Accuracy, as an `evaluate` module that loads from this folder (no Hub download)."""

import evaluate
from sklearn.metrics import accuracy_score

from prompt_vs_finetune.metrics.module_info import LABEL_INDICES, metric_info

DESCRIPTION = "Fraction of predictions equal to the reference label."
INPUTS = """
Args:
    predictions (list of int): predicted label indices.
    references (list of int): gold label indices.
Returns:
    accuracy (float): in [0, 1].
"""


class Accuracy(evaluate.Metric):
    def _info(self):
        return metric_info(DESCRIPTION, INPUTS, LABEL_INDICES)

    def _compute(self, predictions, references):
        return {"accuracy": float(accuracy_score(references, predictions))}
