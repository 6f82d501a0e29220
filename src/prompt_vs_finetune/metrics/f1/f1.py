"""F1 (macro by default), as an `evaluate` module that loads from this folder (no Hub download)."""

import evaluate
from sklearn.metrics import f1_score

from prompt_vs_finetune.metrics.module_info import LABEL_INDICES, metric_info

DESCRIPTION = "F1 score; `average='macro'` weighs every label equally, whatever its frequency."
INPUTS = """
Args:
    predictions (list of int): predicted label indices.
    references (list of int): gold label indices.
    labels (list of int, optional): the label set to average over (labels never predicted nor
        present still count, as 0, in a macro average when listed here).
    average (str): 'macro' (default), 'micro' or 'weighted'.
Returns:
    f1 (float): in [0, 1].
"""


class F1(evaluate.Metric):
    def _info(self):
        return metric_info(DESCRIPTION, INPUTS, LABEL_INDICES)

    def _compute(self, predictions, references, labels=None, average="macro"):
        score = f1_score(references, predictions, labels=labels, average=average, zero_division=0)
        return {"f1": float(score)}
