"""F1 (macro by default), as an `evaluate` module that loads from this folder (no Hub download)."""

import datasets
import evaluate
from sklearn.metrics import f1_score

_DESCRIPTION = "F1 score; `average='macro'` weighs every label equally, whatever its frequency."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted label indices.
    references (list of int): gold label indices.
    labels (list of int, optional): the label set to average over (labels never predicted nor
        present still count, as 0, in a macro average when listed here).
    average (str): 'macro' (default), 'micro' or 'weighted'.
Returns:
    f1 (float): in [0, 1].
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int32"),
                                        "references": datasets.Value("int32")}),
        )

    def _compute(self, predictions, references, labels=None, average="macro"):
        score = f1_score(references, predictions, labels=labels, average=average, zero_division=0)
        return {"f1": float(score)}
